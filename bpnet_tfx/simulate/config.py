"""What the demo simulator draws: motifs, tasks and the `SimulationConfig` that determines every
simulated file, plus the named demo configs (`DEMO_CONFIGS`).

`SimulationConfig.fingerprint()` hashes a config together with `FORMAT_VERSION`; `simulate` names
its cache folders by it, so equal configs share one cached data set and a simulator change that
alters the files must bump `FORMAT_VERSION`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

# Part of the fingerprint: bump it whenever the same config would give different files.
FORMAT_VERSION = 2
_SAFE_NAME = re.compile(r'^[A-Za-z0-9_.-]+$')
# SimulationConfig fields added for the designs: left out of fingerprints at their defaults.
_DESIGN_FIELDS = (
    'any_first_motif',
    'repressor',
    'repressor_probability',
    'repressor_factor',
    'gc_background_slope',
    'gc_background_window',
    'bound_with_control',
)


@dataclasses.dataclass(frozen=True)
class MotifSpec:
    """One planted TF motif and the footprint it leaves.

    The motif centre of an instance starting at `start` is `start + (len(consensus) - 1) / 2`
    (a half-integer for even lengths). For a forward instance the plus-strand footprint peaks at
    `centre - plus_offset` and the minus-strand one at `centre + minus_offset`; a reverse instance
    is the mirror image: plus at `centre - minus_offset`, minus at `centre + plus_offset`.

    Attributes:
      name: motif name, written to motif_sites.tsv.
      consensus: ACGT only, 8 to 16 bases.
      plus_offset: bases from the centre upstream to the plus-strand footprint peak.
      minus_offset: bases from the centre downstream to the minus-strand footprint peak.
      strength: mean expected reads per strand that one exact instance adds to its footprint.
    """

    name: str
    consensus: str
    plus_offset: int
    minus_offset: int
    strength: float

    def __post_init__(self):
        if not _SAFE_NAME.match(self.name):
            raise ValueError(f'Motif name {self.name!r} must match {_SAFE_NAME.pattern}.')
        if not re.fullmatch(r'[ACGT]{8,16}', self.consensus):
            raise ValueError(f'Consensus {self.consensus!r} must be 8 to 16 ACGT bases.')
        if self.strength <= 0:
            raise ValueError(f'Motif {self.name}: strength must be positive.')


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One ChIP-nexus experiment: its name (used in file names) and the motifs it binds."""

    name: str
    motifs: tuple[MotifSpec, ...]

    def __post_init__(self):
        object.__setattr__(self, 'motifs', tuple(self.motifs))
        if not _SAFE_NAME.match(self.name):
            raise ValueError(f'Task name {self.name!r} must match {_SAFE_NAME.pattern}.')
        if not self.motifs:
            raise ValueError(f'Task {self.name} needs at least one motif.')
        names = [m.name for m in self.motifs]
        if len(set(names)) != len(names):
            raise ValueError(f'Task {self.name} has duplicate motif names: {names}.')


_DEFAULT_TASKS = (
    TaskSpec(
        name='demo',
        motifs=(
            # Oct4-Sox2-like composite; odd lengths put footprint peaks exactly on bases.
            MotifSpec(
                'oct4_sox2', 'CTTTGCATAACAATG', plus_offset=11, minus_offset=6, strength=120.0
            ),
            # A weaker Klf-like partner for some syntax.
            MotifSpec('klf4', 'GGCCACACCCA', plus_offset=8, minus_offset=5, strength=50.0),
        ),
    ),
)


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines the simulated files; equal configs give identical files.

    Attributes:
      seed: seed of the single `numpy.random.default_rng` stream.
      chrom_sizes: (name, length) per chromosome, in FASTA/bigWig/BED order. chr1 is the
        validation chromosome by the project's convention.
      peaks_per_mb: peaks per megabase; each chromosome gets round(size * peaks_per_mb / 1e6).
      tasks: experiments; task 0 fills DemoFiles' pos/neg fields.
      instances_per_peak: inclusive (min, max) motif instances of a peak's task. The first is
        always the task's first motif, the others are drawn uniformly from its motifs.
      instance_radius: largest distance in bp from a peak's anchor to an instance centre.
      cobinding_probability: with several tasks, each peak belongs to one task (1-3 instances);
        every other task gets one instance with this probability.
      weak_site_probability: chance that an instance carries one mismatch.
      weak_site_factor: strength multiplier of a mismatched instance.
      peak_factor_sigma: sigma of the per-peak, per-task lognormal amplitude factor (mean 1).
      footprint_sd: sd in bp of the discrete Gaussian footprint of one instance.
      broad_fraction: fraction of a peak's expected reads in the broad component.
      broad_sd: sd in bp of the broad component, centred on the summit.
      background_rate: uniform expected reads per bp per strand (zero inside N stretches).
      summit_jitter_sd: sd in bp of the summit around the mean instance centre (clipped at 3 sd).
      min_peak_spacing: least distance in bp between two peak anchors.
      peak_end_margin: least distance in bp from a peak anchor to a chromosome end.
      n_stretch_chroms: chromosomes that get N stretches.
      n_stretches_per_chrom: N stretches on each of those.
      n_stretch_length: inclusive (min, max) length in bp of an N stretch.
      n_stretch_margin: least distance in bp from a peak anchor to an N.
      gc_mean: mean GC content.
      gc_sd: sd of GC content between blocks (clipped to 0.25..0.65).
      gc_block: length in bp of a block of constant GC content.
      control_rate: expected reads per bp per strand of a control (input) track; 0 for none.
        With a control, every task's background and broad components are modulated by a
        shared bias field (blocks of `control_block` bp with lognormal factors of sigma
        `control_sigma`, mean 1), which the control track measures: so a model that sees the
        control can explain the bias.
      control_block: length in bp of a block of constant bias.
      control_sigma: sigma of the bias field's lognormal factors.
      cooperative_motifs: names of the two motifs (the same name twice for homotypic pairs)
        whose instances cooperate, or () for no cooperative rule.
      cooperative_distance: inclusive (min, max) distance in bp between two instance centres
        that triggers the boost; max stays below the gap between neighbouring peaks'
        instances, so the rule is exact within each peak.
      cooperative_boost: strength factor of an instance with a partner in range (> 1
        cooperative, < 1 competitive).
      any_first_motif: draw every instance's motif uniformly from its task's motifs, the
        first too (default: the first is always the task's first motif).
      repressor: a motif that leaves no footprint but multiplies every instance of its peak,
        all tasks, footprint and broad component alike, by `repressor_factor`; None for none.
      repressor_probability: chance that a peak gets one repressor instance (placed within
        `instance_radius` of its anchor like the others).
      repressor_factor: the repressor's strength factor (< 1 represses).
      gc_background_slope: the background per base is `background_rate` times
        exp(slope * (local GC - gc_mean)), local GC over the `gc_background_window` bp centred
        on the base (N bases left out); 0 for a uniform background.
      gc_background_window: bp of sequence the local GC is measured over.
      bound_with_control: the sequence tracks keep the control's bias field (what a model that
        sees the control can know) instead of setting it to 1.
    """

    seed: int = 0
    chrom_sizes: tuple[tuple[str, int], ...] = (
        ('chr1', 400_000),
        ('chr2', 500_000),
        ('chr3', 500_000),
        ('chr4', 500_000),
        ('chr5', 500_000),
        ('chr6', 500_000),
    )
    peaks_per_mb: float = 1000.0
    tasks: tuple[TaskSpec, ...] = _DEFAULT_TASKS
    instances_per_peak: tuple[int, int] = (1, 3)
    instance_radius: int = 60
    cobinding_probability: float = 0.3
    weak_site_probability: float = 0.25
    weak_site_factor: float = 0.35
    peak_factor_sigma: float = 0.3
    footprint_sd: float = 2.5
    broad_fraction: float = 0.2
    broad_sd: float = 100.0
    background_rate: float = 0.015
    summit_jitter_sd: float = 3.0
    min_peak_spacing: int = 400
    peak_end_margin: int = 700
    n_stretch_chroms: tuple[str, ...] = ('chr1', 'chr3', 'chr5')
    n_stretches_per_chrom: int = 2
    n_stretch_length: tuple[int, int] = (2000, 6000)
    n_stretch_margin: int = 400
    gc_mean: float = 0.41
    gc_sd: float = 0.05
    gc_block: int = 10_000
    control_rate: float = 0.0
    control_block: int = 200
    control_sigma: float = 0.6
    cooperative_motifs: tuple[str, ...] = ('oct4_sox2', 'klf4')
    cooperative_distance: tuple[int, int] = (20, 40)
    cooperative_boost: float = 2.0
    any_first_motif: bool = False
    repressor: MotifSpec | None = None
    repressor_probability: float = 0.0
    repressor_factor: float = 1.0
    gc_background_slope: float = 0.0
    gc_background_window: int = 500
    bound_with_control: bool = False

    def __post_init__(self):
        object.__setattr__(
            self, 'chrom_sizes', tuple((str(c), int(s)) for c, s in self.chrom_sizes)
        )
        object.__setattr__(self, 'tasks', tuple(self.tasks))
        object.__setattr__(self, 'n_stretch_chroms', tuple(self.n_stretch_chroms))
        object.__setattr__(self, 'instances_per_peak', tuple(self.instances_per_peak))
        object.__setattr__(self, 'n_stretch_length', tuple(self.n_stretch_length))
        object.__setattr__(self, 'cooperative_motifs', tuple(self.cooperative_motifs))
        object.__setattr__(self, 'cooperative_distance', tuple(self.cooperative_distance))
        chroms = [c for c, _ in self.chrom_sizes]
        if not chroms or len(set(chroms)) != len(chroms):
            raise ValueError(f'Chromosome names must be unique and non-empty: {chroms}.')
        if not self.tasks or len({t.name for t in self.tasks}) != len(self.tasks):
            raise ValueError('Tasks must be non-empty with unique names.')
        low, high = self.instances_per_peak
        if not 1 <= low <= high:
            raise ValueError(f'instances_per_peak {self.instances_per_peak} must be 1 <= lo <= hi.')
        longest = max(len(m.consensus) for t in self.tasks for m in t.motifs)
        # Keeps neighbouring peaks' instances apart and summits in anchor order.
        if self.min_peak_spacing < 2 * (self.instance_radius + longest + 3 * self.summit_jitter_sd):
            raise ValueError('min_peak_spacing is too small for instance_radius and motif length.')
        if not 0.0 <= self.broad_fraction < 1.0:
            raise ValueError(f'broad_fraction {self.broad_fraction} must be in [0, 1).')
        self._check_cooperativity()
        self._check_designs()

    def _check_designs(self) -> None:
        """The fields the simulator designs added (`simulate.designs`)."""
        if self.repressor is not None:
            if self.repressor.name in {m.name for t in self.tasks for m in t.motifs}:
                raise ValueError(f'repressor {self.repressor.name!r} is also a task motif.')
            if not 0.0 <= self.repressor_probability <= 1.0:
                raise ValueError('repressor_probability must be in [0, 1].')
            if not self.repressor_factor > 0:
                raise ValueError('repressor_factor must be positive.')
        if self.gc_background_window < 1:
            raise ValueError('gc_background_window must be >= 1.')
        if self.bound_with_control and not self.control_rate > 0:
            raise ValueError('bound_with_control needs a control (control_rate > 0).')

    def to_dict(self) -> dict:
        """The config as plain data; the fields the designs added are left out while they hold
        their defaults, so that configs made before them keep their fingerprints."""
        data = dataclasses.asdict(self)
        for field in dataclasses.fields(self):
            if field.name in _DESIGN_FIELDS and data[field.name] == field.default:
                del data[field.name]
        return data

    def _check_cooperativity(self) -> None:
        if not self.cooperative_motifs:
            return
        names = {m.name for t in self.tasks for m in t.motifs}
        if len(self.cooperative_motifs) != 2 or not set(self.cooperative_motifs) <= names:
            raise ValueError(
                f'cooperative_motifs {self.cooperative_motifs} must name two motifs of the '
                f'tasks ({sorted(names)}), or be () for no cooperative rule.'
            )
        low, high = self.cooperative_distance
        # Instances of neighbouring peaks are at least this far apart.
        apart = self.min_peak_spacing - 2 * self.instance_radius
        if not 0 <= low <= high < apart:
            raise ValueError(
                f'cooperative_distance {self.cooperative_distance} must be 0 <= min <= max < '
                f'{apart} (min_peak_spacing - 2 * instance_radius).'
            )
        if not self.cooperative_boost > 0:
            raise ValueError(f'cooperative_boost {self.cooperative_boost} must be positive.')

    def fingerprint(self) -> str:
        """Short stable hash of the config (and the simulator's format version), for cache paths."""
        canonical = json.dumps(
            {'format_version': FORMAT_VERSION, 'config': self.to_dict()},
            sort_keys=True,
            separators=(',', ':'),
        )
        return hashlib.sha256(canonical.encode('utf-8')).hexdigest()[:12]


def _multitask_tasks() -> tuple[TaskSpec, ...]:
    oct4_sox2, klf4 = _DEFAULT_TASKS[0].motifs
    return (
        TaskSpec(name='oct4', motifs=(oct4_sox2,)),
        TaskSpec(name='klf4', motifs=(dataclasses.replace(klf4, strength=100.0),)),
    )


# Named data sets for `make_records --demo=NAME`.
DEMO_CONFIGS = {
    'default': SimulationConfig(),
    # Two tasks with different motifs and footprints, sharing some peaks, plus a control.
    'multitask': SimulationConfig(tasks=_multitask_tasks(), control_rate=0.05),
    # The default's 2,900 peaks spread over a 6.5x larger genome (a peak every ~6.5 kb instead
    # of ~1 kb), so that GC-matched background windows away from peaks (make_records
    # --background_ratio) have room, also at 2114 bp.
    'sparse': SimulationConfig(
        chrom_sizes=tuple((c, 6.5 * s) for c, s in SimulationConfig().chrom_sizes),
        peaks_per_mb=1000.0 / 6.5,
    ),
}
