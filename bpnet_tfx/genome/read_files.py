"""Reads files: their kind, opening and checking alignments, and the text formats' ends.

Kinds (`file_kind`, by name): 'bam' and 'cram' (sorted and indexed: read region by region),
'sam' (read start to end), 'tagalign' (tagAlign or BED6+: chrom, start, end, name, score,
strand; plain or gzip) and 'fragments' (10x fragments.tsv: chrom, start, end, barcode, count,
'#' header lines; plain or gzip; each fragment gives a plus end at start and a minus end at
end - 1). `text_chunks` reads a text file in chunks of ends keyed as reads.py keys them
(pandas' parser, or line by line where a line needs a closer look, so that a bad line is
named exactly). No Beam here.
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
from typing import Iterator, Mapping

import numpy as np

from bpnet_tfx.genome.reads import CountRule, ReadsError

ALIGNMENT_KINDS = ('bam', 'cram', 'sam')
TEXT_KINDS = ('tagalign', 'fragments')
INDEXED_KINDS = ('bam', 'cram')
_SUFFIXES = (
    ('.bam', 'bam'),
    ('.cram', 'cram'),
    ('.sam', 'sam'),
    ('.tagalign', 'tagalign'),
    ('.tagalign.gz', 'tagalign'),
    ('.bed', 'tagalign'),
    ('.bed.gz', 'tagalign'),
    ('.tsv', 'fragments'),
    ('.tsv.gz', 'fragments'),
)
CHUNK_LINES = 1 << 20


def file_kind(path: str) -> str:
    """'bam', 'cram', 'sam', 'tagalign' or 'fragments', from the file name.

    Raises:
      ReadsError: a name none of them ends with.
    """
    lower = path.lower()
    for suffix, kind in sorted(_SUFFIXES, key=lambda s: -len(s[0])):
        if lower.endswith(suffix):
            return kind
    raise ReadsError(
        f'{path}: not a reads file name; known endings: '
        + ', '.join(s for s, _ in _SUFFIXES)
        + ' (tagAlign/BED need a strand column; .tsv is a fragments file)'
    )


def open_alignments(path: str, fasta: str | None = None, *, need_index: bool = True):
    """A pysam AlignmentFile, checked: coordinate-sorted and indexed (BAM/CRAM), CRAM with a
    reference FASTA.

    Raises:
      ReadsError: unreadable, unsorted, unindexed, or a CRAM without `fasta`.
    """
    import pysam

    pysam.set_verbosity(0)  # htslib's own warnings on stderr; ours are one line each.
    kind = file_kind(path)
    if kind == 'cram' and not fasta:
        raise ReadsError(f'{path}: a CRAM file needs its reference: give --fasta')
    mode = {'bam': 'rb', 'cram': 'rc', 'sam': 'r'}[kind]
    try:
        f = pysam.AlignmentFile(path, mode, reference_filename=fasta if kind == 'cram' else None)
    except (OSError, ValueError) as e:
        raise ReadsError(f'{path}: cannot read as {kind.upper()}: {e}') from None
    if kind == 'sam' or not need_index:
        return f
    order = f.header.to_dict().get('HD', {}).get('SO')
    if order != 'coordinate':
        f.close()
        raise ReadsError(
            f'{path}: not sorted by coordinate (header SO:{order or "none"}); run samtools '
            f'sort -o sorted.{kind} {path} && samtools index sorted.{kind}'
        )
    if not f.has_index():
        f.close()
        raise ReadsError(f'{path}: no index beside it; run samtools index {path}')
    return f


def alignment_contigs(f, path: str) -> dict[str, int]:
    """{contig: length} of an AlignmentFile's header, in header order."""
    sizes = dict(zip(f.references, f.lengths))
    if not sizes:
        raise ReadsError(f'{path}: the header names no contig (@SQ lines)')
    return sizes


def contigs_with_reads(f) -> list[str]:
    """Contigs of an indexed file that hold mapped or placed reads, by its index."""
    return [s.contig for s in f.get_index_statistics() if s.total]


def check_contigs(
    path: str, contigs: Mapping[str, int], sizes: Mapping[str, int], sizes_name: str
) -> None:
    """Every contig of a reads file that holds reads must be in `sizes` with its length.

    Raises:
      ReadsError: a contig missing from `sizes_name` or of another length there.
    """
    missing = [c for c in contigs if c not in sizes]
    if missing:
        shown = ', '.join(missing[:5]) + (' ...' if len(missing) > 5 else '')
        raise ReadsError(
            f'{path}: contig(s) {shown} with reads are not in {sizes_name} '
            f'(which has {", ".join(list(sizes)[:5])}{" ..." if len(sizes) > 5 else ""}); '
            'give the FASTA the reads were aligned to'
        )
    for c, n in contigs.items():
        if n and sizes[c] != n:
            raise ReadsError(
                f'{path}: contig {c} is {n} bp long there but {sizes[c]} bp in {sizes_name}; '
                'give the FASTA the reads were aligned to'
            )


@dataclasses.dataclass
class TextChunk:
    """Ends of one chunk of a text file: contig index (into the sizes' order), key
    (2 * base + strand) and mate key (the fragment's other end; -1 for tagAlign)."""

    codes: np.ndarray
    keys: np.ndarray
    mates: np.ndarray
    lines: int  # Records read.
    off_contig: int  # Ends shifted off their contig (dropped).


def _is_gzip(path: str) -> bool:
    with open(path, 'rb') as f:
        return f.read(2) == b'\x1f\x8b'


def _opener(path: str):
    return (lambda: gzip.open(path, 'rt')) if _is_gzip(path) else (lambda: open(path))


def _header_lines(path: str) -> int:
    with _opener(path)() as f:
        return sum(1 for _ in itertools.takewhile(lambda line: line.startswith('#'), f))


def text_chunks(
    path: str,
    kind: str,
    sizes: Mapping[str, int],
    rule: CountRule,
    chunk_lines: int = CHUNK_LINES,
) -> Iterator[TextChunk]:
    """The ends of a tagAlign/BED or fragments file, chunk by chunk, shifted by `rule`.

    Raises:
      ReadsError: an unreadable file, or a bad line, named as 'file:line: ...'.
    """
    names = list(sizes)
    header = _header_lines(path)
    done = 0
    try:
        for cols in _pandas_chunks(path, kind, header, chunk_lines):
            chunk = _columns_chunk(cols, kind, names, sizes, rule)
            if chunk is None:  # A line to look at closely: from here on, line by line.
                break
            done += chunk.lines
            yield chunk
        else:
            return
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ReadsError(f'{path}: cannot read: {e}') from None
    except ValueError:  # pandas' ParserError: a line pandas' fast parser cannot split.
        pass
    yield from _python_chunks(path, kind, sizes, rule, header + done, chunk_lines)


def _pandas_chunks(path: str, kind: str, header: int, chunk_lines: int):
    import pandas as pd

    usecols = [0, 1, 2, 5] if kind == 'tagalign' else [0, 1, 2]
    reader = pd.read_csv(
        path,
        sep='\t',
        header=None,
        usecols=usecols,
        skiprows=header,
        chunksize=chunk_lines,
        skip_blank_lines=False,
        dtype={0: str, 5: str},
        compression='gzip' if _is_gzip(path) else None,
        engine='c',
    )
    with reader:
        for df in reader:
            yield [df[c].to_numpy() for c in usecols]


def _columns_chunk(cols, kind, names, sizes, rule) -> TextChunk | None:
    """A chunk from parsed columns, or None where any row is not a clean record."""
    import pandas as pd

    chrom, start, end = cols[:3]
    if start.dtype.kind != 'i' or end.dtype.kind != 'i':
        return None
    codes = pd.Categorical(chrom, categories=names).codes.astype(np.int64)
    if (codes < 0).any():
        return None
    size = np.asarray([sizes[n] for n in names], np.int64)[codes]
    if ((start < 0) | (start >= end) | (end > size)).any():
        return None
    if kind == 'tagalign':
        strand = cols[3]
        minus = strand == '-'
        if not (minus | (strand == '+')).all():
            return None
        return _ends(codes, start, end, minus, size, rule, len(start))
    return _fragment_ends(codes, start, end, size, rule)


def _ends(codes, start, end, minus, size, rule, lines) -> TextChunk:
    base = np.where(minus, end - 1 + rule.shift[1], start + rule.shift[0])
    keep = (base >= 0) & (base < size)
    keys = 2 * base + minus
    mates = np.full(keys.shape, -1, np.int64)
    return TextChunk(codes[keep], keys[keep], mates[keep], lines, int((~keep).sum()))


def _fragment_ends(codes, start, end, size, rule) -> TextChunk:
    plus = start + rule.shift[0]
    minus = end - 1 + rule.shift[1]
    both = np.concatenate([plus, minus])
    keys = np.concatenate([2 * plus, 2 * minus + 1])
    mates = np.concatenate([2 * minus + 1, 2 * plus])
    codes2, size2 = np.concatenate([codes, codes]), np.concatenate([size, size])
    keep = (both >= 0) & (both < size2)
    return TextChunk(codes2[keep], keys[keep], mates[keep], len(start), int((~keep).sum()))


def _python_chunks(path, kind, sizes, rule, skip, chunk_lines) -> Iterator[TextChunk]:
    """Line by line from line `skip` + 1 on; the first bad line raises."""
    index = {n: i for i, n in enumerate(sizes)}
    size_of = np.asarray(list(sizes.values()), np.int64)
    with _opener(path)() as f:
        rows: list[tuple[int, int, int, bool]] = []
        for number, line in enumerate(itertools.islice(f, skip, None), skip + 1):
            if not line.strip() or line.startswith('#'):
                continue
            rows.append(_parse_line(path, number, line, kind, index, sizes))
            if len(rows) == chunk_lines:
                yield _rows_chunk(rows, kind, size_of, rule)
                rows = []
        if rows:
            yield _rows_chunk(rows, kind, size_of, rule)


def _rows_chunk(rows, kind, size_of, rule) -> TextChunk:
    codes, start, end, minus = (np.asarray(c) for c in zip(*rows))
    codes, start, end = codes.astype(np.int64), start.astype(np.int64), end.astype(np.int64)
    if kind == 'tagalign':
        return _ends(codes, start, end, minus.astype(bool), size_of[codes], rule, len(rows))
    return _fragment_ends(codes, start, end, size_of[codes], rule)


def _parse_line(path, number, line, kind, index, sizes) -> tuple[int, int, int, bool]:
    cols = line.rstrip('\r\n').split('\t')
    need = 6 if kind == 'tagalign' else 3
    what = (
        'tagAlign/BED line (chrom, start, end, name, score, strand)'
        if need == 6
        else ('fragments line (chrom, start, end, barcode, count)')
    )
    where = f'{path}:{number}'
    if len(cols) < need:
        raise ReadsError(f'{where}: {len(cols)} tab-separated columns; a {what} has {need}+')
    try:
        start, end = int(cols[1]), int(cols[2])
    except ValueError:
        raise ReadsError(
            f'{where}: start {cols[1]!r} or end {cols[2]!r} is not an integer'
        ) from None
    if cols[0] not in index:
        raise ReadsError(f'{where}: contig {cols[0]!r} is not in the genome (FASTA or sizes)')
    if not 0 <= start < end <= sizes[cols[0]]:
        raise ReadsError(
            f'{where}: needs 0 <= start < end <= {sizes[cols[0]]} (the length of {cols[0]}), '
            f'got {start}-{end}'
        )
    strand = cols[5].strip() if need == 6 else '+'
    if strand not in ('+', '-'):
        raise ReadsError(f"{where}: strand {strand!r} is not '+' or '-'")
    return index[cols[0]], start, end, strand == '-'


def read_chrom_sizes(path: str) -> dict[str, int]:
    """A two-column chrom.sizes file (or a .fai), in file order.

    Raises:
      ReadsError: unreadable, or a line without a name and a positive length.
    """
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                cols = line.split()
                try:
                    name, size = cols[0], int(cols[1])
                except (IndexError, ValueError):
                    size = 0
                if size <= 0:
                    raise ReadsError(f'{path}:{number}: expected a name and a length in bp')
                out[name] = size
    except OSError as e:
        raise ReadsError(f'{path}: cannot read chromosome sizes: {e.strerror or e}') from None
    if not out:
        raise ReadsError(f'{path}: no chromosome sizes in it')
    return out
