"""Named simulator designs that differ from the demo and from each other in what sets a
window's counts, how peaks are spaced and how deep the data are (`DESIGNS`).

Each design is a `SimulationConfig` and a line saying what it tests; `design_config` gives it
with another seed or a smaller genome (for tests and smoke runs). Every design writes its own
sequence bound (`<task>.sequence.{pos,neg}.bw`, what the sequence determines; with a control
that carries counts, the sequence and the control), so evaluation reports the count Pearson
correlation a model can reach on it. `benchmarks/studies/designs.py` trains on each.
"""

from __future__ import annotations

import dataclasses

from bpnet_tfx.simulate.config import MotifSpec, SimulationConfig, TaskSpec

# Odd lengths put footprint peaks exactly on bases; no motif is its own reverse complement.
_EBOX = MotifSpec('ebox', 'GCACGTGAC', plus_offset=7, minus_offset=5, strength=150.0)
_GATA = MotifSpec('gata', 'CAGATAAGA', plus_offset=6, minus_offset=6, strength=40.0)
_NR = MotifSpec('nr', 'TCAAGGTCA', plus_offset=6, minus_offset=5, strength=60.0)
_NFY = MotifSpec('nfy', 'CCAATCAGC', plus_offset=5, minus_offset=7, strength=60.0)
_AP1 = MotifSpec('ap1', 'ATGACTCAGCA', plus_offset=8, minus_offset=6, strength=100.0)
_REPRESSOR = MotifSpec('rep', 'GTTACGTTAC', plus_offset=0, minus_offset=0, strength=1.0)
_SOX = MotifSpec('sox', 'ACAAAGGCT', plus_offset=6, minus_offset=5, strength=80.0)

# About 8 Mb in six chromosomes (chr1, the validation chromosome, holds a fifth).
_GENOME = (('chr1', 1_600_000),) + tuple((f'chr{i}', 1_300_000) for i in range(2, 7))
# One peak per window even at 2114 bp: anchors at least 2200 bp apart, 250 per Mb.
_ISOLATED = dict(
    chrom_sizes=_GENOME,
    peaks_per_mb=250.0,
    min_peak_spacing=2200,
    peak_end_margin=1200,
    n_stretch_chroms=('chr3',),
)


# What the sequence does not set is small: no weak sites, peak factors of sigma 0.15, and no
# cooperative rule unless a design sets one.
_CLEAN = dict(weak_site_probability=0.0, peak_factor_sigma=0.15, cooperative_motifs=())


@dataclasses.dataclass(frozen=True)
class Design:
    """One simulator design: what it tests (`description`) and its config (seed 0)."""

    name: str
    description: str
    config: SimulationConfig


def _sites() -> SimulationConfig:
    # One or two sites, a strong and a weak motif, little noise beyond the sequence.
    return SimulationConfig(
        tasks=(TaskSpec('sites', (_EBOX, _GATA)),),
        instances_per_peak=(1, 2),
        any_first_motif=True,
        background_rate=0.01,
        **_ISOLATED,
        **_CLEAN,
    )


def _cooperative() -> SimulationConfig:
    # Instances within 25 bp of the anchor, so that a quarter of the pairs fall 11-20 bp apart.
    return SimulationConfig(
        tasks=(TaskSpec('coop', (_NR, _NFY)),),
        instances_per_peak=(1, 2),
        any_first_motif=True,
        instance_radius=25,
        cooperative_distance=(11, 20),
        cooperative_boost=4.0,
        **_ISOLATED,
        **{**_CLEAN, 'cooperative_motifs': ('nr', 'nfy')},
    )


def _repressor() -> SimulationConfig:
    return SimulationConfig(
        tasks=(TaskSpec('rep', (_AP1,)),),
        instances_per_peak=(1, 3),
        repressor=_REPRESSOR,
        repressor_probability=0.4,
        repressor_factor=0.25,
        **_ISOLATED,
        **{**_CLEAN, 'weak_site_probability': 0.2},
    )


def _gc_background() -> SimulationConfig:
    # Weak single sites over a background that varies fourfold between a GC content one sd
    # below and one above the mean.
    return SimulationConfig(
        tasks=(TaskSpec('gc', (dataclasses.replace(_SOX, strength=25.0),)),),
        instances_per_peak=(1, 1),
        background_rate=0.06,
        gc_sd=0.07,
        gc_block=1500,
        gc_background_slope=10.0,
        gc_background_window=300,
        **_ISOLATED,
        **_CLEAN,
    )


def _control() -> SimulationConfig:
    # Background and a broad component of 40% carry about half of a window's reads, and
    # follow a bias field that the control track measures.
    return SimulationConfig(
        tasks=(TaskSpec('ctl', (_SOX,)),),
        instances_per_peak=(1, 2),
        background_rate=0.03,
        broad_fraction=0.4,
        control_rate=0.1,
        control_sigma=0.8,
        control_block=300,
        bound_with_control=True,
        **_ISOLATED,
        **_CLEAN,
    )


def _dense() -> SimulationConfig:
    # Peaks 200 bp apart at the least, 2 per kb: a window holds its neighbours' signal too.
    # 1 Mb holds about as many peaks (2,000) as the isolated designs' 8 Mb.
    deep = (dataclasses.replace(_EBOX, strength=300.0), dataclasses.replace(_NR, strength=180.0))
    return SimulationConfig(
        chrom_sizes=tuple((f'chr{i}', 250_000) for i in range(1, 5)),
        tasks=(TaskSpec('dense', deep),),
        peaks_per_mb=2000.0,
        min_peak_spacing=200,
        instance_radius=40,
        instances_per_peak=(1, 2),
        any_first_motif=True,
        broad_sd=50.0,
        cooperative_motifs=(),
        peak_end_margin=1200,
        n_stretch_chroms=('chr3',),
    )


def _low_depth() -> SimulationConfig:
    # 20-100 reads a 1000-bp window (both strands).
    shallow = (dataclasses.replace(_GATA, strength=12.0), dataclasses.replace(_NFY, strength=6.0))
    return SimulationConfig(
        tasks=(TaskSpec('low', shallow),),
        instances_per_peak=(1, 3),
        any_first_motif=True,
        background_rate=0.004,
        **_ISOLATED,
        **{**_CLEAN, 'peak_factor_sigma': 0.2},
    )


_DESCRIPTIONS = {
    'sites': 'counts set by the number of sites and two motifs of different strength',
    'cooperative': 'a heterotypic pair 11-20 bp apart quadruples its sites',
    'repressor': 'a motif without footprint quarters its whole peak',
    'gc_background': 'weak sites over a background set by the local GC content',
    'control': 'a control track carries about half of the counts',
    'dense': 'peaks 200 bp apart at the least, high depth',
    'low_depth': '20-100 reads a window',
}
_CONFIGS = {
    'sites': _sites,
    'cooperative': _cooperative,
    'repressor': _repressor,
    'gc_background': _gc_background,
    'control': _control,
    'dense': _dense,
    'low_depth': _low_depth,
}
DESIGNS = {name: Design(name, _DESCRIPTIONS[name], make()) for name, make in _CONFIGS.items()}


def design_config(name: str, *, seed: int = 0, scale: float = 1.0) -> SimulationConfig:
    """The config of design `name` with `seed`, its chromosomes `scale` times as long.

    Raises:
      KeyError: an unknown design (the message lists the names).
    """
    if name not in DESIGNS:
        raise KeyError(f'unknown design {name!r}; designs: {", ".join(DESIGNS)}')
    config = DESIGNS[name].config
    sizes = tuple((chrom, int(round(size * scale))) for chrom, size in config.chrom_sizes)
    return dataclasses.replace(config, seed=seed, chrom_sizes=sizes)
