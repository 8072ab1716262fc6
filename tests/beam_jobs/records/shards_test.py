"""Tests of beam_jobs/records/shards.py: chunks, the deal of chunks to shard files, --num_shards."""

from __future__ import annotations

import numpy as np
import pytest

from beam_jobs.common.errors import RecordsInputError
from beam_jobs.records import shards
from beam_jobs.records.regions import Region
from tests.fixtures.windows import KEPT, NUM_SHARDS

_BACKGROUND = Region('chr1', 130, 150, 'train', 1, -1, True)


def test_make_chunks_cuts_by_split_chrom_size_and_span():
    regions = [Region('chr1', s, s + 10, 'train', i) for i, s in enumerate([50, 0, 20, 30, 40])]
    regions += [
        Region('chr1', 5, 15, 'valid', 9),
        Region('chr2', 0, 10, 'train', 10),
        Region('chr2', 5000, 5010, 'train', 11),
    ]
    chunks = shards.make_chunks(regions, chunk_size=2, max_span=1000)
    got = [(c.split, c.chrom, [r.start for r in c.regions]) for c in chunks]
    assert got == [
        ('train', 'chr1', [0, 20]),
        ('train', 'chr1', [30, 40]),
        ('train', 'chr1', [50]),
        ('train', 'chr2', [0]),
        ('train', 'chr2', [5000]),
        ('valid', 'chr1', [5]),
    ]


def test_plan_shards_is_balanced_sorted_complete_and_stable():
    rng = np.random.default_rng(1)
    regions = [
        Region(f'chr{c}', int(s), int(s) + 100, 'valid' if c == 1 else 'train', i)
        for i, (c, s) in enumerate(zip(rng.integers(1, 4, 2000), rng.integers(0, 10**6, 2000)))
    ]
    num_shards = {'train': 5, 'valid': 2, 'test': 0}
    plans = shards.plan_shards(regions, num_shards, chunk_size=32)
    assert [(p.split, p.shard, p.num_shards) for p in plans] == [
        ('train', i, 5) for i in range(5)
    ] + [('valid', 0, 2), ('valid', 1, 2)]
    placed = [r for p in plans for c in p.chunks for r in c.regions]
    assert sorted(placed, key=lambda r: r.line) == regions  # Each region exactly once.
    for p in plans:
        keys = [(r.chrom, r.start, r.end) for c in p.chunks for r in c.regions]
        assert keys == sorted(keys)  # File order is (chrom, start, end).
        assert all(r.split == p.split for c in p.chunks for r in c.regions)
    train = [p.num_regions for p in plans if p.split == 'train']
    assert max(train) - min(train) <= 32  # Within one chunk.
    # Same plan from a shuffled input, and through the JSON the pipeline reads.
    again = shards.plan_shards(list(reversed(regions)), num_shards, chunk_size=32)
    assert again == plans
    assert [shards.ShardPlan.from_json(p.to_json()) for p in plans] == plans


def test_plan_shards_needs_a_shard_for_every_split_with_regions():
    with pytest.raises(ValueError, match='valid split has regions but no shards'):
        shards.plan_shards([Region('chr1', 0, 10, 'valid')], {'train': 1})


def test_shard_index_is_a_stable_hash():
    assert shards.shard_index('train/chr1:0-1000', 7) == shards.shard_index('train/chr1:0-1000', 7)
    assert len({shards.shard_index(f'chr1:{i}-{i + 10}', 4) for i in range(64)}) == 4


def test_plan_json_keeps_the_background_flag():
    plans = shards.plan_shards(KEPT + [_BACKGROUND], {'train': 1, 'valid': 1, 'test': 1})
    assert [shards.ShardPlan.from_json(p.to_json()) for p in plans] == plans
    assert sum(r.background for p in plans for c in p.chunks for r in c.regions) == 1
    # Peaks only: the JSON is as before (no fifth field).
    assert '[50,70,1,0]' in shards.plan_shards(KEPT, NUM_SHARDS)[0].to_json()


def test_num_shards_flag():
    counts = {'train': 4001, 'valid': 1, 'test': 0}
    auto = shards.parse_num_shards(' auto ')
    assert shards.shards_per_split(auto, counts) == {'train': 3, 'valid': 1, 'test': 0}
    assert shards.shards_per_split(shards.parse_num_shards('4'), counts) == {
        'train': 4,
        'valid': 4,
        'test': 0,
    }
    assert shards.shards_per_split(shards.parse_num_shards('train=2,valid=1,test=2'), counts) == {
        'train': 2,
        'valid': 1,
        'test': 2,
    }
    for bad in ('many', 'train=2,other=1', 'train:2'):
        with pytest.raises(RecordsInputError, match='--num_shards: cannot read'):
            shards.parse_num_shards(bad)
    with pytest.raises(RecordsInputError, match='the valid split has 1 regions but 0 shards'):
        shards.shards_per_split(shards.parse_num_shards('train=2'), counts)
