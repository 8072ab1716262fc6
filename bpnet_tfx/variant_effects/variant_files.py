"""Variants files: VCF (plain, gzip or bgzip) and TSV chrom, pos, ref, alt -> `Variant`s.

One parser for the variants command and the Beam job (beam_jobs/score_variants.py reads the
file on its driver with `read_variants`, so both see the same rows in the same order). Pure
Python: no TensorFlow or Beam.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
from typing import Iterator, Sequence

from bpnet_tfx.common.errors import BpnetError


class VariantError(BpnetError):
    """A malformed variants file (names file:line), or nothing to score."""


@dataclasses.dataclass(frozen=True)
class Variant:
    """One REF/ALT pair; `pos` is 1-based as in VCF; `where` is 'file:line'."""

    chrom: str
    pos: int
    ref: str
    alt: str
    variant_id: str
    where: str = ''

    @property
    def key(self) -> str:
        return f'{self.chrom}:{self.pos}:{self.ref}:{self.alt}'

    def to_list(self) -> list:
        """[chrom, pos, ref, alt, variant_id]: the JSON form the Beam job's chunks carry."""
        return [self.chrom, self.pos, self.ref, self.alt, self.variant_id]

    @classmethod
    def from_list(cls, fields: Sequence) -> 'Variant':
        chrom, pos, ref, alt, variant_id = fields
        return cls(chrom, int(pos), ref, alt, variant_id)


def _open_text(path: str):
    if not os.path.isfile(path):
        raise VariantError(f'{path}: no such variants file')
    with open(path, 'rb') as f:
        magic = f.read(2)
    if magic == b'\x1f\x8b':  # gzip, and bgzip (a series of gzip members)
        return gzip.open(path, 'rt')
    return open(path)


def read_variants(path: str) -> Iterator[Variant]:
    """Variants of a VCF (plain or bgzipped) or of a TSV chrom, pos, ref, alt, in file order.

    A VCF is recognised by '##fileformat=VCF' or a '#CHROM' header; its multi-allelic ALTs
    give one variant each, with the same ID ('.' becomes chrom:pos:ref:alt). A TSV may start
    with a header line (its pos column not a number); '#' lines are comments.

    Raises:
      VariantError: no such file, or a line that cannot be parsed ('file:line: ...').
    """
    vcf = None
    with _open_text(path) as f:
        first = True
        try:
            for number, line in enumerate(f, 1):
                line = line.rstrip('\r\n')
                if line.startswith('##fileformat=VCF') or line.startswith('#CHROM'):
                    vcf = True
                if not line.strip() or line.startswith('#'):
                    continue
                fields = line.split('\t')
                where = f'{path}:{number}'
                if vcf is None:
                    vcf = False
                if vcf:
                    yield from _vcf_line(fields, where)
                    continue
                if first and len(fields) >= 4 and not _is_int(fields[1]):
                    first = False
                    if fields[1].strip().lower() in ('pos', 'position', 'start'):
                        continue  # the header line
                first = False
                yield from _tsv_line(fields, where)
        except (UnicodeDecodeError, EOFError, OSError, gzip.BadGzipFile) as e:
            raise VariantError(f'{path}: cannot read: {e}') from None


def _is_int(text: str) -> bool:
    return bool(re.fullmatch(r'-?\d+', text.strip()))


def _alleles(where: str, chrom: str, pos: str, ref: str, alt: str, vid: str) -> Iterator[Variant]:
    if not chrom or not _is_int(pos) or not ref or not alt:
        raise VariantError(
            f'{where}: malformed variant line; expected chrom, an integer 1-based pos, ref, alt'
        )
    ref = ref.strip().upper()
    for a in alt.strip().split(','):
        a = a.upper()
        key = f'{chrom}:{int(pos)}:{ref}:{a}'
        yield Variant(chrom, int(pos), ref, a, vid if vid and vid != '.' else key, where)


def _vcf_line(fields: Sequence[str], where: str) -> Iterator[Variant]:
    if len(fields) < 5:
        raise VariantError(
            f'{where}: malformed VCF line: {len(fields)} tab-separated fields, '
            'expected at least 5 (CHROM POS ID REF ALT)'
        )
    return _alleles(where, fields[0], fields[1], fields[3], fields[4], fields[2])


def _tsv_line(fields: Sequence[str], where: str) -> Iterator[Variant]:
    if len(fields) < 4:
        raise VariantError(
            f'{where}: malformed TSV line: {len(fields)} tab-separated fields, '
            'expected chrom, pos, ref, alt'
        )
    return _alleles(where, *fields[:4], '')
