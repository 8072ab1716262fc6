"""Tests of variant_files: VCF (plain, gzip, bgzip) and TSV parsing, multi-allelic records
split, missing IDs named, malformed lines named by file and line."""

import gzip

import pytest

from bpnet_tfx.variant_effects import variant_files
from bpnet_tfx.variant_effects.variant_files import Variant, VariantError


def _tsv(path, rows, header=True):
    text = 'chrom\tpos\tref\talt\n' if header else ''
    path.write_text(text + ''.join('\t'.join(map(str, r)) + '\n' for r in rows))
    return str(path)


def test_vcf_plain_and_gzip_split_alts_and_name_missing_ids(tmp_path):
    text = (
        '##fileformat=VCFv4.2\n'
        '#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n'
        'chr1\t10\trs1\tA\tC,gT\t.\t.\t.\n'
        'chr1\t20\t.\tAT\tA\t.\t.\t.\n'
    )
    plain = tmp_path / 'a.vcf'
    plain.write_text(text)
    packed = tmp_path / 'a.vcf.gz'
    with gzip.open(packed, 'wt') as f:
        f.write(text)
    blocks = tmp_path / 'a.vcf.bgz'  # bgzip's layout: a series of gzip members
    half = text.index('chr1\t20')
    blocks.write_bytes(gzip.compress(text[:half].encode()) + gzip.compress(text[half:].encode()))
    for path in (plain, packed, blocks):
        got = list(variant_files.read_variants(str(path)))
        assert [(v.chrom, v.pos, v.ref, v.alt, v.variant_id) for v in got] == [
            ('chr1', 10, 'A', 'C', 'rs1'),
            ('chr1', 10, 'A', 'GT', 'rs1'),
            ('chr1', 20, 'AT', 'A', 'chr1:20:AT:A'),
        ]
        assert got[2].where == f'{path}:4'


def test_tsv_with_and_without_header(tmp_path):
    for header in (True, False):
        path = _tsv(tmp_path / 'a.tsv', [('chr1', 5, 'A', 'G')], header=header)
        (v,) = variant_files.read_variants(path)
        assert (v.chrom, v.pos, v.ref, v.alt, v.variant_id) == ('chr1', 5, 'A', 'G', 'chr1:5:A:G')


@pytest.mark.parametrize(
    'text, where',
    [
        ('chrom\tpos\tref\talt\nchr1\t5\tA\n', 'a.txt:2: malformed TSV line'),
        ('chr1\tfive\tA\tC\n', 'a.txt:1: malformed variant line'),
        ('#CHROM\tPOS\tID\tREF\tALT\nchr1\t5\t.\tA\n', 'a.txt:2: malformed VCF line'),
        ('#CHROM\tPOS\tID\tREF\tALT\nchr1\t5.5\t.\tA\tC\n', 'a.txt:2: malformed variant line'),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, where):
    path = tmp_path / 'a.txt'
    path.write_text(text)
    with pytest.raises(VariantError, match=where):
        list(variant_files.read_variants(str(path)))


def test_variant_round_trips_through_its_list_form():
    v = Variant('chr2', 17, 'AT', 'A', 'rs9', 'f.vcf:3')
    back = Variant.from_list(v.to_list())
    assert back == Variant('chr2', 17, 'AT', 'A', 'rs9') and back.key == 'chr2:17:AT:A'
