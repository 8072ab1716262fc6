"""Shard plans of the records job: which windows go to which shard file, in which order.

The driver cuts the sorted regions of each split and chromosome into chunks of nearby regions
(`make_chunks`) and deals the chunks out to the split's shard files (`plan_shards`); a
`ShardPlan` lists the chunks of one file and travels to the workers as one JSON line. The deal
depends only on the regions and the number of files (a stable hash, never `hash()`), so the
files are the same bytes on every run and runner. `--num_shards` becomes files per split in
`parse_num_shards` + `shards_per_split`. No Beam here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Iterable, Mapping

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records.regions import Region
from bpnet_tfx.records import schema

PLANS_FILENAME = '_shard_plans.jsonl'  # Written by the driver, read by the pipeline.
CHUNK_SIZE = 256  # Regions per chunk: the unit of work and of records held in memory.
MAX_CHUNK_SPAN = 1_000_000  # bp from a chunk's first window start to its last window end.
RECORDS_PER_SHARD = 2000  # --num_shards=auto: about this many records per file.


def shard_index(key: str, num_shards: int) -> int:
    """Returns a hash of `key` in [0, num_shards), the same in every process and run.

    Python's `hash()` of a string changes per process, so it would deal chunks differently on
    each run.
    """
    digest = hashlib.md5(key.encode()).digest()
    return int.from_bytes(digest[:8], 'big') % num_shards


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Nearby regions of one split on one chromosome, sorted by (start, end)."""

    split: str
    chrom: str
    regions: tuple[Region, ...]

    @property
    def key(self) -> str:
        first = self.regions[0]
        return f'{self.split}/{first.region_id}'


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """The chunks of one shard file, in file order (chromosome, then position)."""

    split: str
    shard: int
    num_shards: int
    chunks: tuple[Chunk, ...] = ()

    @property
    def filename(self) -> str:
        return schema.shard_filename(self.split, self.shard, self.num_shards)

    @property
    def num_regions(self) -> int:
        return sum(len(c.regions) for c in self.chunks)

    def to_json(self) -> str:
        return json.dumps(
            {
                'split': self.split,
                'shard': self.shard,
                'num_shards': self.num_shards,
                'chunks': [
                    {
                        'chrom': c.chrom,
                        'regions': [
                            [r.start, r.end, r.line, r.task] + ([1] if r.background else [])
                            for r in c.regions
                        ],
                    }
                    for c in self.chunks
                ],
            },
            separators=(',', ':'),
        )

    @classmethod
    def from_json(cls, line: str) -> 'ShardPlan':
        d = json.loads(line)
        chunks = tuple(
            Chunk(
                d['split'],
                c['chrom'],
                tuple(
                    Region(c['chrom'], r[0], r[1], d['split'], r[2], r[3], len(r) > 4 and r[4] == 1)
                    for r in c['regions']
                ),
            )
            for c in d['chunks']
        )
        return cls(d['split'], d['shard'], d['num_shards'], chunks)


def make_chunks(
    regions: Iterable[Region], *, chunk_size: int = CHUNK_SIZE, max_span: int = MAX_CHUNK_SPAN
) -> list[Chunk]:
    """Cuts regions into chunks: sorted runs of at most `chunk_size` regions of one split and
    chromosome spanning at most `max_span` bp (a longer single region is its own chunk)."""
    ordered = sorted(regions, key=lambda r: (r.split, r.chrom, r.start, r.end, r.task, r.line))
    chunks, current = [], []
    for r in ordered:
        if current and (
            r.split != current[0].split
            or r.chrom != current[0].chrom
            or len(current) == chunk_size
            or r.end - current[0].start > max_span
        ):
            chunks.append(Chunk(current[0].split, current[0].chrom, tuple(current)))
            current = []
        current.append(r)
    if current:
        chunks.append(Chunk(current[0].split, current[0].chrom, tuple(current)))
    return chunks


def plan_shards(
    regions: Iterable[Region],
    num_shards: Mapping[str, int],
    *,
    chunk_size: int = CHUNK_SIZE,
    max_span: int = MAX_CHUNK_SPAN,
) -> list[ShardPlan]:
    """Deals each split's chunks out to its shard files; one plan per planned file.

    Chunks are taken in the order of a stable hash of their first region (so a file mixes
    chunks from all over the genome) and each goes to the file with the fewest regions so far
    (ties: the lowest index), which balances the files to within one chunk. The result depends
    only on the regions and `num_shards`.

    Raises:
      ValueError: a split has regions but no shards.
    """
    by_split: dict[str, list[Chunk]] = {s: [] for s in schema.SPLITS}
    for chunk in make_chunks(regions, chunk_size=chunk_size, max_span=max_span):
        by_split[chunk.split].append(chunk)
    plans = []
    for split in schema.SPLITS:
        n = num_shards.get(split, 0)
        if by_split[split] and n <= 0:
            raise ValueError(f'the {split} split has regions but no shards')
        loads = [0] * n
        members: list[list[Chunk]] = [[] for _ in range(n)]
        hashed = sorted(by_split[split], key=lambda c: (shard_index(c.key, 1 << 62), c.key))
        for chunk in hashed:
            i = min(range(n), key=lambda j: (loads[j], j))
            members[i].append(chunk)
            loads[i] += len(chunk.regions)
        for i in range(n):
            ordered = sorted(
                members[i], key=lambda c: (c.chrom, c.regions[0].start, c.regions[0].end)
            )
            plans.append(ShardPlan(split, i, n, tuple(ordered)))
    return plans


def parse_num_shards(flag: str) -> str | int | dict[str, int]:
    """Reads --num_shards: 'auto', one number, or 'train=8,valid=1,test=1' (others 0).

    Raises:
      RecordsInputError: a malformed value (checked before any input is read).
    """
    flag = flag.strip()
    if flag == 'auto':
        return flag
    try:
        if '=' not in flag:
            return int(flag)
        plan = dict.fromkeys(schema.SPLITS, 0)
        for item in flag.split(','):
            split, value = item.split('=')
            if split.strip() not in plan:
                raise ValueError(split)
            plan[split.strip()] = int(value)
        return plan
    except ValueError:
        raise RecordsInputError(
            f"--num_shards: cannot read {flag!r}; give 'auto', a number, or "
            "'train=8,valid=1,test=1'"
        ) from None


def shards_per_split(
    num_shards: str | int | Mapping[str, int], counts: Mapping[str, int]
) -> dict[str, int]:
    """Shard files per split from `parse_num_shards(...)` and the regions per split.

    'auto' gives about one file per RECORDS_PER_SHARD regions, at least one per split with
    regions; a number gives that many to every split with regions.

    Raises:
      RecordsInputError: --num_shards gives zero (or fewer) files to a split with regions.
    """
    if num_shards == 'auto':
        return {s: math.ceil(n / RECORDS_PER_SHARD) if n else 0 for s, n in counts.items()}
    if isinstance(num_shards, int):
        plan = {s: num_shards if counts[s] else 0 for s in schema.SPLITS}
    else:
        plan = dict(num_shards)
    for split in schema.SPLITS:
        if plan[split] < 0 or (counts[split] and plan[split] == 0):
            raise RecordsInputError(
                f'--num_shards: the {split} split has {counts[split]} '
                f'regions but {plan[split]} shards'
            )
    return plan
