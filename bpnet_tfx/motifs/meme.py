"""MEME motif files (minimal MEME format): writing our motifs, reading a user's database.

A motif is a letter-probability matrix (width, 4) over ACGT. Reading is strict: a file that is
not MEME, a matrix row that does not hold four probabilities summing to about 1, or a matrix
shorter than its `w=` says, stops with 'file:line: what is wrong'.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from bpnet_tfx.common.errors import BpnetError

_ALPHABET_LINE = re.compile(r'^ALPHABET\s*=\s*(\S+)')
_MATRIX_LINE = re.compile(r'^letter-probability matrix:(.*)$')


class MemeError(BpnetError):
    """A MEME file that cannot be read, reported as 'file:line: ...'."""


@dataclasses.dataclass(frozen=True)
class Motif:
    """One motif of a MEME file.

    Attributes:
      name: the MOTIF line's identifier.
      alt_name: its optional second field (e.g. the TF name of a JASPAR entry), or ''.
      pfm: (width, 4) letter probabilities, ACGT.
    """

    name: str
    alt_name: str
    pfm: np.ndarray

    @property
    def label(self) -> str:
        """'name (alt_name)', or the name alone."""
        return f'{self.name} ({self.alt_name})' if self.alt_name else self.name


def write_meme(path: str, motifs: list[Motif], background=(0.25, 0.25, 0.25, 0.25)) -> None:
    """Writes `motifs` as a MEME version 4 file, both strands, the given background."""
    lines = [
        'MEME version 4',
        '',
        'ALPHABET= ACGT',
        '',
        'strands: + -',
        '',
        'Background letter frequencies',
        ' '.join(f'{b} {p:.4f}' for b, p in zip('ACGT', background)),
        '',
    ]
    for m in motifs:
        lines.append(f'MOTIF {m.name} {m.alt_name}'.rstrip())
        lines.append(f'letter-probability matrix: alength= 4 w= {len(m.pfm)} nsites= 20 E= 0')
        lines.extend(' '.join(f'{p:.6f}' for p in row) for row in m.pfm)
        lines.append('')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def _width(path: str, number: int, header: str) -> int | None:
    """The `w=` of a matrix header line, None if absent."""
    match = re.search(r'\bw\s*=\s*(\S+)', header)
    if match is None:
        return None
    try:
        width = int(match.group(1))
    except ValueError:
        raise MemeError(f'{path}:{number}: w= {match.group(1)!r} is not an integer') from None
    if width < 1:
        raise MemeError(f'{path}:{number}: w= {width}: a motif needs at least one position')
    return width


def _row(path: str, number: int, line: str) -> np.ndarray:
    try:
        row = np.array([float(v) for v in line.split()])
    except ValueError:
        raise MemeError(f'{path}:{number}: matrix row {line.strip()!r} is not numbers') from None
    if row.size != 4 or not np.all(np.isfinite(row)) or np.any(row < 0):
        raise MemeError(
            f'{path}:{number}: a matrix row needs 4 non-negative probabilities (A C G T), '
            f'got {line.strip()!r}'
        )
    if abs(row.sum() - 1.0) > 0.02:
        raise MemeError(f'{path}:{number}: matrix row sums to {row.sum():.3f}, not 1')
    return row / row.sum()


def read_meme(path: str) -> list[Motif]:
    """Reads every motif of a MEME file (DNA, ACGT), in file order.

    Raises:
      MemeError: no such file, not a MEME file, another alphabet, a bad or short matrix, a
        duplicated motif name, or no motif at all.
    """
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise MemeError(f'{path}: cannot read the motif database: {e}') from None
    if not any(line.startswith('MEME version') for line in lines[:50]):
        raise MemeError(f"{path}:1: not a MEME file (no 'MEME version' line)")
    motifs: list[Motif] = []
    name = alt = None
    rows: list[np.ndarray] = []
    width = header_line = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        alphabet = _ALPHABET_LINE.match(stripped)
        if alphabet and alphabet.group(1).upper() != 'ACGT':
            raise MemeError(f'{path}:{number}: alphabet {alphabet.group(1)} is not ACGT (DNA)')
        if stripped.startswith('MOTIF'):
            _finish(path, header_line, name, alt, rows, width, motifs)
            fields = stripped.split()
            if len(fields) < 2:
                raise MemeError(f'{path}:{number}: MOTIF line without a name')
            name, alt = fields[1], ' '.join(fields[2:])
            rows, width, header_line = [], None, None
            continue
        matrix = _MATRIX_LINE.match(stripped)
        if matrix and name is not None:
            width, header_line = _width(path, number, matrix.group(1)), number
            continue
        if header_line is not None and (width is None or len(rows) < width):
            if stripped and re.match(r'^[-+.0-9eE]', stripped):
                rows.append(_row(path, number, stripped))
                continue
            if not stripped and not rows:
                continue  # blank lines before the first row
            if width is not None:
                raise MemeError(
                    f'{path}:{number}: motif {name} has {len(rows)} of its w= {width} rows'
                )
            _finish(path, header_line, name, alt, rows, width, motifs)
            name, header_line = None, None
    _finish(path, header_line, name, alt, rows, width, motifs)
    if not motifs:
        raise MemeError(f'{path}: no motif with a letter-probability matrix')
    seen: set[str] = set()
    for m in motifs:
        if m.name in seen:
            raise MemeError(f'{path}: motif name {m.name} appears twice')
        seen.add(m.name)
    return motifs


def _finish(path, header_line, name, alt, rows, width, motifs) -> None:
    """Appends the motif read so far (if it had a matrix) to `motifs`."""
    if name is None or header_line is None:
        return
    if not rows or (width is not None and len(rows) != width):
        raise MemeError(
            f'{path}:{header_line}: motif {name} has {len(rows)} matrix rows, w= says {width}'
        )
    motifs.append(Motif(name, alt or '', np.stack(rows)))


def consensus_pfm(consensus: str, purity: float = 0.85) -> np.ndarray:
    """(W, 4) PFM giving each consensus base `purity` and the others the rest equally."""
    rows = np.full((len(consensus), 4), (1 - purity) / 3)
    rows[np.arange(len(consensus)), ['ACGT'.index(b) for b in consensus]] = purity
    return rows


def demo_database(decoys: int = 40, seed: int = 0) -> list[Motif]:
    """A small motif database for the simulated demo (`bpnet_tfx.simulate.simulator`): one motif per
    planted consensus (named SIM0001.., the simulator's motif name as alt name), a
    letter-shuffled copy of each, and `decoys` random motifs of 8-16 bp. Tests and the demo
    annotate against it; real work uses a real database such as JASPAR."""
    from bpnet_tfx.simulate import simulator as simulate

    rng = np.random.default_rng(seed)
    planted = {
        m.name: m.consensus
        for config in simulate.DEMO_CONFIGS.values()
        for t in config.tasks
        for m in t.motifs
    }
    out = []
    for name, consensus in sorted(planted.items()):
        out.append(Motif(f'SIM{len(out) + 1:04d}', name, consensus_pfm(consensus)))
        shuffled = ''.join(rng.permutation(list(consensus)))
        out.append(Motif(f'SIM{len(out) + 1:04d}', f'{name}_shuffled', consensus_pfm(shuffled)))
    for _ in range(decoys):
        width = int(rng.integers(8, 17))
        out.append(
            Motif(
                f'SIM{len(out) + 1:04d}',
                f'decoy{len(out) + 1}',
                rng.dirichlet(np.full(4, 0.4), width),
            )
        )
    return out
