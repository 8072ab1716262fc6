"""The benchmark protocol on fake arms and a fake load average: interleaving, the median and
spread of a ratio, pairs measured under load repeated and, past the retries, not a result."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from benchmarks import common


def _arms(calls, **values):
    """Arms that log their calls and return their next value (a number or a dict)."""

    def arm(name):
        it = iter(values[name])

        def run():
            calls.append(name)
            return next(it)

        return run

    return {name: arm(name) for name in values}


def _loads(*values):
    it = iter(values)
    return lambda: next(it)


def test_pairs_interleave_and_the_ratio_is_the_median_with_its_spread():
    calls, sleeps, lines = [], [], []
    arms = _arms(calls, ours=[200.0, 150.0, 300.0], base=[100.0, 100.0, 100.0])
    out = common.compare(
        arms,
        [common.Ratio('ours / base', 'ours', 'base', '>= 1.5')],
        common.Protocol(pairs=3),
        load=lambda: 1.0,
        cores=2,
        sleep=sleeps.append,
        log=lines.append,
    )
    assert calls == ['ours', 'base', 'base', 'ours', 'ours', 'base']
    s = out['ratios']['ours / base']
    assert (s['median'], s['min'], s['max']) == (2.0, 1.5, 3.0)
    assert s['values'] == [2.0, 1.5, 3.0]
    assert s['loads'] == [1.0, 1.0, 1.0] and s['result'] and out['result']
    assert (s['pairs_counted'], s['pairs_rejected']) == (3, 0)
    assert not sleeps and len(lines) == 3 and out['max_load'] == 2


def test_a_pair_under_load_is_measured_again_and_left_out():
    calls, sleeps = [], []
    # Pair 1: loads 1.0, 1.5, 1.2 -> counts. Pair 2: a load of 3.1 after its first arm ->
    # repeated (after a pause); its second attempt counts. Pair 3 counts.
    loads = _loads(1.0, 1.5, 1.2, 1.0, 3.1, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5)
    arms = _arms(calls, ours=[4.0, 99.0, 6.0, 8.0], base=[2.0, 1.0, 2.0, 2.0])
    out = common.compare(
        arms,
        [common.Ratio('r', 'ours', 'base')],
        common.Protocol(pairs=3, retries=2, pause_s=7.0),
        load=loads,
        cores=2,
        sleep=sleeps.append,
        log=lambda line: None,
    )
    assert sleeps == [7.0]
    s = out['ratios']['r']
    assert s['values'] == [2.0, 3.0, 4.0]  # the 99x pair measured under load is left out
    assert s['median'] == 3.0 and s['result']
    assert s['loads'] == [1.5, 1.0, 0.5]
    assert (s['pairs_counted'], s['pairs_rejected']) == (3, 1)
    rejected = [a for a in out['pairs'] if not a['counts']]
    assert [(a['pair'], a['attempt'], a['load']) for a in rejected] == [(1, 0, 3.1)]
    assert rejected[0]['order'] == ['base', 'ours']


def test_retries_are_bounded_and_a_pair_always_under_load_is_not_a_result():
    calls = []
    arms = _arms(calls, ours=[1.0] * 9, base=[1.0] * 9)
    out = common.compare(
        arms,
        [common.Ratio('r', 'ours', 'base', '>= 2')],
        common.Protocol(pairs=3, retries=1, max_load=4.0),
        load=lambda: 4.5,
        cores=64,  # an explicit max_load wins over the core count
        sleep=lambda s: None,
        log=lambda line: None,
    )
    assert len(calls) == 3 * 2 * 2  # 3 pairs x 2 attempts x 2 arms, then it gives up
    s = out['ratios']['r']
    assert s['median'] is None and not s['result'] and not out['result']
    assert (s['pairs_counted'], s['pairs_rejected']) == (0, 6)
    row = common.table({'x': out}).splitlines()[1]
    assert 'NOT A RESULT (0 of 3 pairs under the load limit)' in row


def test_each_pair_records_the_cores_the_benchmark_itself_kept_busy():
    ticks = iter([0.0, 10.0, 10.0, 25.0])  # the wall clock around two pairs
    cpus = iter([0.0, 18.0, 100.0, 115.0])  # CPU seconds of this process and its children
    out = common.compare(
        {'a': lambda: 2.0, 'b': lambda: 1.0},
        [common.Ratio('a / b', 'a', 'b')],
        common.Protocol(pairs=2),
        load=lambda: 1.9,
        cores=2,
        log=lambda line: None,
        cpu=lambda: next(cpus),
        clock=lambda: next(ticks),
    )
    assert [p['own_cpu'] for p in out['pairs']] == [1.8, 1.0]


def test_metrics_of_an_arm_and_fewer_than_three_pairs_are_never_a_result():
    arms = {
        'peer': lambda: {'counts': 4.0, 'profile': 2.0, 'faster': 4.0},
        'ours': lambda: {'windows_per_second': 10.0},
    }
    out = common.compare(
        arms,
        [common.Ratio('ours / faster', 'ours.windows_per_second', 'peer.faster')],
        common.Protocol(pairs=1),
        load=lambda: 0.1,
        cores=2,
        log=lambda line: None,
    )
    s = out['ratios']['ours / faster']
    assert s['median'] == 2.5 and s['pairs_counted'] == 1
    assert not s['result'] and s['pairs_wanted'] == common.MIN_PAIRS


def test_bad_protocols_are_refused():
    with pytest.raises(ValueError):
        common.compare({'a': lambda: 1.0}, [], common.Protocol(pairs=0), load=lambda: 0.0)
    with pytest.raises(ValueError):
        common.compare({'a': lambda: 1.0}, [], common.Protocol(retries=-1), load=lambda: 0.0)


def test_report_prints_the_table_and_one_json_line():
    out = common.compare(
        {'a': lambda: 3.0, 'b': lambda: 2.0},
        [common.Ratio('a / b', 'a', 'b', '>= 1')],
        load=lambda: 0.5,
        cores=2,
        log=lambda line: None,
    )
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        common.report('bench_fake', {'speed': out}, windows=7)
    lines = buffer.getvalue().splitlines()
    assert lines[0].split()[:3] == ['ratio', 'median', 'min-max']
    assert lines[1].split()[:5] == ['a', '/', 'b', '1.5x', '1.5-1.5x']
    record = json.loads(lines[-1])
    assert record['benchmark'] == 'bench_fake' and record['windows'] == 7
    assert record['comparisons']['speed']['ratios']['a / b']['median'] == 1.5
    assert record['machine']['cores'] >= 1


def test_protocol_flags_round_trip():
    import argparse

    parser = argparse.ArgumentParser()
    common.add_protocol_flags(parser)
    args = parser.parse_args(['--pairs=5', '--max_load=3.5'])
    assert common.protocol_from_args(args) == common.Protocol(pairs=5, retries=2, max_load=3.5)
