"""bench_contrib's guard on the peer: a peer whose scores miss their output differences, or
that used other references than ours, stops the benchmark in one line; tangermeme's own
convergence warning is read as the fraction it states."""

from __future__ import annotations

import pytest

from benchmarks import bench_contrib
from benchmarks.peers import bpnet_lite


def _head(**kw):
    return {
        'references': 10,
        'completeness_delta': 1e-5,
        'tangermeme_relative_delta_max': 0.0,
        **kw,
    }


def test_a_complete_peer_with_our_references_passes():
    bench_contrib._check_peer({'counts': _head(), 'profile': _head()}, 10)


@pytest.mark.parametrize(
    'head, message',
    [
        (_head(completeness_delta=0.02), "profile scores miss their output differences by 2.0%"),
        (
            _head(tangermeme_relative_delta_max=1.063),
            'profile scores miss their output differences by 106.3%',
        ),
        (_head(references=20), 'the peer used 20 references a window for its profile head'),
    ],
)
def test_a_peer_with_wrong_scores_or_other_references_stops_the_benchmark(head, message, capsys):
    with pytest.raises(SystemExit) as stop:
        bench_contrib._check_peer({'counts': _head(), 'profile': head}, 10)
    assert str(stop.value).startswith('bench_contrib: error: ')
    assert message in str(stop.value) and '\n' not in str(stop.value)


def test_tangermeme_convergence_warnings_are_read_as_fractions():
    message = (
        'Convergence deltas are 106.3% of the output differences: an operation in the model '
        'has no DeepLIFT rule and is being treated as linear. See additional_nonlinear_ops.'
    )
    assert bpnet_lite._relative_delta(message) == pytest.approx(1.063)
    assert bpnet_lite._relative_delta('Convergence deltas too high: tensor([0.01])') == 0.0
