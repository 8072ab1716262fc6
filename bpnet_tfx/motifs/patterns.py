"""Discovered motifs (TF-MoDISco patterns) as plain arrays: read from modisco-lite's HDF5,
trimmed, reverse complemented, and turned into MEME motifs.

A pattern holds its CWM (mean observed-base contribution of its aligned seqlets, (W, 4)),
hypothetical CWM, PFM (base frequencies) and its seqlets' coordinates in the rows of the
contribution folder it came from. Reading needs only h5py (a core dependency), so scanning
and reports work without modisco-lite installed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.motifs import meme

METACLUSTERS = ('pos_patterns', 'neg_patterns')
TRIM_THRESHOLD = 0.3  # modisco-lite's report trims at 30% of the largest position's |CWM|
MAX_GAP = 3  # positions below the threshold a core may span


class PatternsError(BpnetError):
    """A modisco results file that cannot be read."""


@dataclasses.dataclass(frozen=True)
class Seqlets:
    """Seqlet coordinates: row of the contribution folder, start and end in the row's window
    (bp from the window's start), and whether the seqlet is the reverse complement."""

    row: np.ndarray
    start: np.ndarray
    end: np.ndarray
    revcomp: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


@dataclasses.dataclass(frozen=True)
class Pattern:
    """One motif found by TF-MoDISco for one target.

    Attributes:
      name: '<target>/<pos|neg>_<i>', unique within a discovery folder.
      target: the contribution target ('profile', 'counts', '<task>.profile', ...).
      sign: +1 for a pattern of positive contributions, -1 for negative.
      cwm: (W, 4) contribution weight matrix (mean observed-base contributions).
      hcwm: (W, 4) hypothetical contribution weight matrix.
      pfm: (W, 4) base frequencies of the aligned seqlets.
      seqlets: where its seqlets sit.
    """

    name: str
    target: str
    sign: int
    cwm: np.ndarray
    hcwm: np.ndarray
    pfm: np.ndarray
    seqlets: Seqlets

    @property
    def meme_name(self) -> str:
        """The name without '/', for MEME files and HTML ids: '<target>.<pos|neg>_<i>'."""
        return self.name.replace('/', '.')

    def core(self, threshold: float = TRIM_THRESHOLD) -> tuple[int, int]:
        """[start, end) of the motif's core: the positions whose |CWM| sum reaches `threshold`
        x the largest, taken around the largest while gaps below it are at most `MAX_GAP`
        positions long. (modisco-lite's report keeps everything from the first to the last
        such position, which makes a composite of a motif and a partner's edge at a fixed
        spacing one long motif.)"""
        score = np.abs(self.cwm).sum(axis=1)
        keep = np.flatnonzero(score >= threshold * score.max())
        peak = int(np.searchsorted(keep, int(np.argmax(score))))
        lo = hi = peak
        while lo > 0 and keep[lo] - keep[lo - 1] <= MAX_GAP + 1:
            lo -= 1
        while hi < len(keep) - 1 and keep[hi + 1] - keep[hi] <= MAX_GAP + 1:
            hi += 1
        return int(keep[lo]), int(keep[hi]) + 1

    def trimmed(self, threshold: float = TRIM_THRESHOLD) -> Pattern:
        """The pattern cut to `core(threshold)`; seqlet coordinates shifted alike."""
        lo, hi = self.core(threshold)
        s = self.seqlets
        # A reverse-complement seqlet reads the window backwards: pattern position k is
        # window position end - 1 - k.
        start = np.where(s.revcomp, s.end - hi, s.start + lo)
        end = np.where(s.revcomp, s.end - lo, s.start + hi)
        return dataclasses.replace(
            self,
            cwm=self.cwm[lo:hi],
            hcwm=self.hcwm[lo:hi],
            pfm=self.pfm[lo:hi],
            seqlets=Seqlets(s.row, start, end, s.revcomp),
        )

    def consensus(self) -> str:
        """The base of largest |CWM| at each position (the motif the model sees)."""
        return ''.join('ACGT'[i] for i in np.argmax(np.abs(self.cwm), axis=1))

    def meme_motif(self, threshold: float = TRIM_THRESHOLD) -> meme.Motif:
        """The trimmed PFM as a MEME motif named `meme_name`, its consensus as alt name."""
        core = self.trimmed(threshold)
        return meme.Motif(self.meme_name, core.consensus(), core.pfm)


def reverse_complement_matrix(matrix: np.ndarray) -> np.ndarray:
    """(W, 4) ACGT matrix of the other strand: positions reversed, bases complemented."""
    return np.ascontiguousarray(np.asarray(matrix)[::-1, ::-1])


def read_modisco_h5(path: str, target: str, row_offset: int = 0) -> list[Pattern]:
    """The patterns of a modisco-lite results file, positive metacluster first.

    Args:
      path: `modisco motifs` output (HDF5).
      target: the contribution target they were found in.
      row_offset: bp from each contribution window's start to the start of the part
        modisco-lite saw (its `-w` crop), added to seqlet coordinates.

    Raises:
      PatternsError: not an HDF5 file of modisco-lite's layout.
    """
    import h5py

    try:
        f = h5py.File(path, 'r')
    except OSError as e:
        raise PatternsError(f'{path}: cannot read modisco results: {e}') from None
    out = []
    with f:
        for metacluster in METACLUSTERS:
            if metacluster not in f:
                continue
            group = f[metacluster]
            names = sorted(group, key=lambda k: int(k.split('_')[-1]))
            for key in names:
                p = group[key]
                try:
                    s = p['seqlets']
                    seqlets = Seqlets(
                        np.asarray(s['example_idx'][:], np.int64),
                        np.asarray(s['start'][:], np.int64) + row_offset,
                        np.asarray(s['end'][:], np.int64) + row_offset,
                        np.asarray(s['is_revcomp'][:], bool),
                    )
                    sign = 1 if metacluster == 'pos_patterns' else -1
                    out.append(
                        Pattern(
                            name=f'{target}/{metacluster[:3]}_{key.split("_")[-1]}',
                            target=target,
                            sign=sign,
                            cwm=np.asarray(p['contrib_scores'][:], np.float64),
                            hcwm=np.asarray(p['hypothetical_contribs'][:], np.float64),
                            pfm=np.asarray(p['sequence'][:], np.float64),
                            seqlets=seqlets,
                        )
                    )
                except KeyError as e:
                    raise PatternsError(
                        f'{path}: {metacluster}/{key} lacks {e}; not a modisco-lite results file'
                    ) from None
    return out
