"""Tests of the plateau rule: learning-rate halving, best epoch, early stop."""

import math

import pytest

from bpnet_tfx.training import plateau


@pytest.mark.parametrize(
    'patience, expected',
    [
        (1, [1.0, 1.0, 0.5, 0.25, 0.25, 0.125, 0.0625]),
        (2, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]),
        (0, [1.0] * 7),
    ],
)
def test_plateau_learning_rate_rule(patience, expected):
    # Validation losses 5, 4, 4.5, 4.2, 3, 3.1, 3.2: best at epochs 1, 2 and 5.
    stale = [0, 0, 1, 2, 0, 1, 2]
    rate, rates = 1.0, []
    for s in stale:
        rate = plateau.plateau_learning_rate(rate, s, patience)
        rates.append(rate)
    assert rates == expected
    assert plateau.plateau_learning_rate(1.5e-6, 1, 1) == 1e-6  # Floor...
    assert plateau.plateau_learning_rate(1e-7, 1, 1) == 1e-7  # ...never a raise.


def test_judge_keeps_the_best_epoch_halves_and_stops():
    # Validation losses 5, 4, 4.5, 4.2, 3, 3.1, 3.2 with patience 2 and halving after 1.
    best_epoch, best_loss, lr, verdicts = 0, math.inf, 1.0, []
    for epoch, loss in enumerate([5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2], start=1):
        v = plateau.judge(epoch, loss, best_epoch, best_loss, lr, patience=2, reduce_lr_patience=1)
        verdicts.append(v)
        if v.improved:
            best_epoch, best_loss = epoch, loss
        lr = v.learning_rate
        if v.stop:
            break
    assert [v.improved for v in verdicts] == [True, True, False, False]
    assert [v.stale for v in verdicts] == [0, 0, 1, 2]
    assert [v.learning_rate for v in verdicts] == [1.0, 1.0, 0.5, 0.25]
    assert [v.stop for v in verdicts] == [False, False, False, True] and best_epoch == 2
    # An equal loss is no improvement; patience 0 never stops.
    v = plateau.judge(3, 4.0, 2, 4.0, 1.0, patience=0, reduce_lr_patience=0)
    assert not v.improved and v.stale == 1 and not v.stop and v.learning_rate == 1.0
