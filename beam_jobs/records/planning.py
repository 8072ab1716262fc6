"""Driver-side choice of windows: which peaks become records, before any pipeline runs.

`plan_windows` reads every task's peaks (regions.py) and checks them against the FASTA and
bigWigs, then sets windows aside with a reason (window_rules.py): a second peak of one task at
the same window (`merge_tasks`: duplicate; another task's peak there is merged, not dropped),
windows past a chromosome end (`drop_out_of_bounds`), windows overlapping the --blacklist
(`drop_blacklisted`), and count outliers (outliers.py, the bpnet v2 rule: total counts above
1.2 x a quantile of the task's peaks' totals, from the driver's exact window totals). It adds
GC-matched background windows away from peaks (background.py) and stops, with one line, when a
split the user asked for can give no record (`--allow_empty_splits`: a warning instead). A
window dropped here drops every task's peak at it. No Beam here.
"""

from __future__ import annotations

import logging
import shutil
from typing import Mapping, Sequence

import numpy as np

from beam_jobs.common import files as files_lib
from beam_jobs.records import accounting, input_checks, outliers, splits, window_rules
from beam_jobs.records import background as background_lib
from beam_jobs.records import regions as regions_lib
from beam_jobs.records import tasks as tasks_lib
from beam_jobs.records.plan import PeaksAt, PlanConfig, WindowPlan  # noqa: F401 (planning's public names)
from beam_jobs.records.regions import (
    BLACKLISTED,
    DUPLICATE,
    OUT_OF_BOUNDS,
    OUTLIER_COUNTS,
    RecordsInputError,
    Region,
)

_LOGGER = logging.getLogger(__name__)


def plan_windows(
    config: PlanConfig,
    task_list: Sequence[tasks_lib.Task],
    fasta: str,
    blacklist: str | None = None,
) -> WindowPlan:
    """Reads and checks the inputs and chooses the windows (see the module docstring).

    Args:
      config: how to choose.
      task_list: the tasks; their files may be remote (copied to a local folder, removed
        after).
      fasta: the genome FASTA (a remote one with a remote .fai is not copied, unless
        background windows need its sequence).
      blacklist: optional BED of regions to leave out.

    Raises:
      RecordsInputError: bad input files, a split item that can give no record, or an
        asked-for split left with no window (unless config.allow_empty_splits).
    """
    local_dir = files_lib.make_local_dir()
    try:
        local, fasta_sizes = _local_inputs(
            task_list, fasta, blacklist, local_dir, need_sequence=bool(config.background_ratio)
        )
        names = {v: k for k, v in local.items()}
        spans = {'valid': config.valid, 'test': config.test}
        peaks = _read_peaks(config, task_list, local)
        windows, duplicates, merged = window_rules.merge_tasks(peaks)
        sizes = _check_inputs(config, task_list, fasta, local, fasta_sizes, windows, peaks)
        blacklist_intervals = (
            window_rules.read_blacklist(local[blacklist], name=blacklist) if blacklist else None
        )
        peaks_at = PeaksAt(merged)
        counts = [tuple(local[p] for p in t.pair('counts')) for t in task_list]
        windows, lost, thresholds, totals = _drop_windows(
            config, windows, sizes, blacklist_intervals, peaks_at, counts, names
        )
        background = None
        if config.background_ratio:
            background = _sample_background(
                config, windows, peaks, sizes, local[fasta], fasta, blacklist_intervals, spans
            )
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
    dropped = [(r, DUPLICATE) for r in duplicates]
    dropped += [(peak, reason) for window, reason in lost for peak in peaks_at(window)]
    plan = WindowPlan(
        peaks,
        windows,
        background,
        dropped,
        {w.region_id for w, _ in lost},
        merged,
        peaks_at,
        spans,
        thresholds,
        totals,
    )
    _stop_on_empty_splits(plan, config)
    return plan


def _check_inputs(
    config: PlanConfig,
    task_list: Sequence[tasks_lib.Task],
    fasta: str,
    local: dict[str, str],
    fasta_sizes: dict[str, int] | None,
    windows: list[Region],
    peaks: list[Region],
) -> dict[str, int]:
    """Checks the input files against each other and the splits against the peaks (stopping
    or warning, `accounting.stop_or_warn`); returns the chromosome sizes."""
    sizes = input_checks.check_inputs(
        windows,
        peaks_path=[t.peaks for t in task_list],
        fasta_path=local.get(fasta, fasta),
        bigwig_paths=[local[p] for t in task_list for p in t.files()[1:]],
        names={v: k for k, v in local.items()},
        fasta_sizes=fasta_sizes,
    )
    spans = {'valid': config.valid, 'test': config.test}
    accounting.stop_or_warn(
        splits.split_problems(
            {f'{s}_chroms': v for s, v in spans.items()},
            peaks,
            sizes,
            fasta,
            defaults=config.default_flags,
        ),
        config.allow_empty_splits,
    )
    return sizes


def _read_peaks(
    config: PlanConfig, task_list: Sequence[tasks_lib.Task], local: Mapping[str, str]
) -> list[Region]:
    """Every task's peaks, in task then file order, each with its split."""
    peaks = []
    for i, task in enumerate(task_list):
        peaks += regions_lib.read_peaks(
            local[task.peaks],
            sequence_length=config.sequence_length,
            valid=config.valid,
            test=config.test,
            task=i,
            name=task.peaks,
        )
    return peaks


def _stop_on_empty_splits(plan: WindowPlan, config: PlanConfig) -> None:
    """Stops (or warns, with allow_empty_splits) when an asked-for split has no window left."""
    accounting.stop_or_warn(
        accounting.empty_splits(
            plan.spans,
            splits.split_counts(plan.regions),
            plan.peaks,
            accounting.reasons_by_split((p, r) for p, r in plan.dropped if r != DUPLICATE),
        ),
        config.allow_empty_splits,
    )


def _local_inputs(
    task_list: Sequence[tasks_lib.Task],
    fasta: str,
    blacklist: str | None,
    local_dir: str,
    *,
    need_sequence: bool,
) -> tuple[dict[str, str], dict[str, int] | None]:
    """({input: local path}, FASTA sizes from a remote .fai or None): what the driver reads."""
    inputs = [p for t in task_list for p in t.files()] + ([blacklist] if blacklist else [])
    if files_lib.is_remote(fasta) and files_lib.exists(fasta + '.fai') and not need_sequence:
        # The index gives the sizes: no need to copy a whole genome to the driver.
        fai = files_lib.localize_inputs([fasta + '.fai'], local_dir)[fasta + '.fai']
        return (
            files_lib.localize_inputs(inputs, local_dir),
            input_checks.fai_chrom_sizes(fai, name=fasta + '.fai'),
        )
    return files_lib.localize_inputs([fasta] + inputs, local_dir), None


def _drop_windows(
    config: PlanConfig,
    windows: list[Region],
    sizes: Mapping[str, int],
    blacklist: window_rules.Blacklist | None,
    peaks_at: PeaksAt,
    counts: Sequence[tuple[str, str]],
    names: Mapping[str, str],
):
    """(kept, [(window, reason)], thresholds, totals of kept): the window rules in turn."""
    windows, out_of_bounds = window_rules.drop_out_of_bounds(windows, sizes, config.max_jitter)
    lost = [(w, OUT_OF_BOUNDS) for w in out_of_bounds]
    if blacklist is not None:
        windows, blacklisted = window_rules.drop_blacklisted(windows, blacklist, config.max_jitter)
        lost += [(w, BLACKLISTED) for w in blacklisted]
    thresholds, totals = None, None
    if 0.0 < config.outlier_quantile < 1.0:
        windows, high, thresholds, totals = _drop_outliers(config, windows, peaks_at, counts, names)
        lost += [(w, OUTLIER_COUNTS) for w in high]
    return windows, lost, thresholds, totals


def _drop_outliers(
    config: PlanConfig,
    windows: Sequence[Region],
    peaks_at: PeaksAt,
    counts: Sequence[tuple[str, str]],
    names: Mapping[str, str],
):
    """(kept, outliers, thresholds (tasks,), totals of kept (len(kept), tasks)): the
    --outlier_quantile rule on the windows.

    The driver computes the totals itself (exact sums of the bigWigs over each counts window,
    `outliers.window_totals`) rather than the pipeline: the threshold needs every peak's total
    before any record is written, and the pipeline would have to read every window twice or rewrite
    its shards; the driver reads only the counts bigWigs, once, over nearby windows together,
    and no step ever holds records.
    """
    totals = outliers.window_totals(windows, counts, trim=config.trim, names=names)
    has_peak = np.zeros((len(windows), len(counts)), bool)
    for i, r in enumerate(windows):
        for peak in peaks_at(r):
            has_peak[i, peak.task] = True
    kept, high, thresholds = outliers.drop_outliers(
        windows, totals, has_peak, config.outlier_quantile
    )
    dropped = {id(r) for r in high}
    totals = totals[[i for i, r in enumerate(windows) if id(r) not in dropped]]
    _LOGGER.info(
        'outlier rule (quantile %g x %g): thresholds %s; %d window(s) dropped',
        config.outlier_quantile,
        outliers.OUTLIER_FACTOR,
        ', '.join(f'{t:.1f}' for t in thresholds),
        len(high),
    )
    return kept, high, thresholds, totals.reshape(len(kept), len(counts))


def _sample_background(
    config: PlanConfig,
    windows: Sequence[Region],
    peaks: Sequence[Region],
    sizes: Mapping[str, int],
    fasta_path: str,
    fasta_name: str,
    blacklist,
    spans: Mapping[str, Sequence[splits.ChromSpan]],
) -> background_lib.BackgroundSample:
    """GC-matched background windows for the kept peak windows (background.py)."""
    import pyfaidx

    try:
        fasta = pyfaidx.Fasta(fasta_path, as_raw=True)
    except Exception as e:  # pyfaidx raises several types for bad inputs.
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RecordsInputError(f'{fasta_name}: cannot open FASTA: {message}') from None
    with fasta:
        sample = background_lib.sample_background(
            fasta,
            windows,
            peaks,
            sizes,
            ratio=config.background_ratio,
            seed=config.background_seed,
            sequence_length=config.sequence_length,
            max_jitter=config.max_jitter,
            max_n_fraction=config.max_n_fraction,
            blacklist=blacklist,
            valid=spans['valid'],
            test=spans['test'],
        )
    _LOGGER.info(
        'background: %d window(s) of %d asked for, from %d candidates away from '
        'peaks; GC KS statistic vs peaks %.4f',
        len(sample.regions),
        sample.requested,
        sample.candidates,
        sample.ks,
    )
    if len(sample.regions) < sample.requested:
        _LOGGER.warning(
            'background: only %d candidate windows away from peaks, blacklist and '
            'N-rich sequence; %d asked for (--background_ratio %g): using all',
            sample.candidates,
            sample.requested,
            config.background_ratio,
        )
    return sample
