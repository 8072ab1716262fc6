"""Predicts one region with an exported SavedModel and plots it against the observed profile.

    python -m bpnet_tfx.predict --saved_model=DIR --region=chr1:180924452-180925452 \
        [--fasta=FILE --pos_bigwig=FILE --neg_bigwig=FILE] --output_png=FILE

The figure is the reference experiment's: predicted profile probabilities against observed
counts normalised per strand, plus strand up, minus strand down, titled with the region. The
same numbers go to a TSV beside the PNG. A region of another length than the model's window is
centred: the model sees the window of its own length around the region's midpoint, and the
command says so. --fasta and the bigWigs default to the files the training records were made
from (metadata.json in the export).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import numpy as np
from absl import app, flags, logging

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_REGION = flags.DEFINE_string(
    'region', None, "Region 'chrom:start-end', 0-based half-open like BED (so "
    "chr1:180924452-180925452 is 1000 bp); other lengths are centred on the model window.")
_FASTA = flags.DEFINE_string('fasta', None, 'Genome FASTA; default: the training records\' one.')
_POS_BIGWIG = flags.DEFINE_string('pos_bigwig', None,
                                  'Observed plus-strand bigWig; default: the records\' one.')
_NEG_BIGWIG = flags.DEFINE_string('neg_bigwig', None,
                                  'Observed minus-strand bigWig; default: the records\' one.')
_OUTPUT_PNG = flags.DEFINE_string('output_png', None, 'Where to write the plot.')
_OUTPUT_TSV = flags.DEFINE_string('output_tsv', None,
                                  'Where to write the numbers; default: the PNG path with .tsv.')

_REGION_RE = re.compile(r'^([^:\s]+):([\d,]+)-([\d,]+)$')


class PredictError(Exception):
    """Bad region or inputs, reported in one line."""


def parse_region(text: str) -> tuple[str, int, int]:
    """Parses 'chrom:start-end' into (chrom, start, end); commas in numbers are allowed.

    Raises:
      PredictError: malformed text or start >= end.
    """
    m = _REGION_RE.match(text.strip()) if text else None
    if not m:
        raise PredictError(f"malformed region {text!r}; expected 'chrom:start-end', e.g. "
                           'chr1:180924452-180925452')
    chrom, start, end = m.group(1), int(m.group(2).replace(',', '')), \
        int(m.group(3).replace(',', ''))
    if start >= end:
        raise PredictError(f'region {text!r}: start must be below end')
    return chrom, start, end


def centred_window(start: int, end: int, length: int) -> tuple[int, int]:
    """The window of `length` bp centred on the midpoint of [start, end)."""
    centre = (start + end) // 2
    return centre - length // 2, centre - length // 2 + length


def read_window(fasta: str, bigwigs: tuple[str | None, str | None], chrom: str, start: int,
                end: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One-hot sequence (L, 4) and observed counts (L, 2) or None, with one-line errors."""
    import pyBigWig
    import pyfaidx

    from bpnet_tfx import sequence
    try:
        genome = pyfaidx.Fasta(fasta, as_raw=True, sequence_always_upper=True)
    except (OSError, pyfaidx.FastaIndexingError) as e:
        raise PredictError(f'{fasta}: cannot open FASTA: {e}') from None
    with genome:
        if chrom not in genome:
            raise PredictError(f'{fasta}: chromosome {chrom!r} not in the FASTA (it has '
                               f'{", ".join(list(genome.keys())[:5])}, ...)')
        size = len(genome[chrom])
        if start < 0 or end > size:
            raise PredictError(f'region {chrom}:{start}-{end} runs past the end of {chrom} '
                               f'({size:,} bp)')
        one_hot = sequence.one_hot(genome[chrom][start:end])
    if not all(bigwigs):
        return one_hot, None
    tracks = []
    for path in bigwigs:
        try:
            bw = pyBigWig.open(path)
        except (RuntimeError, OSError):
            bw = None
        if bw is None:
            raise PredictError(f'{path}: cannot open bigWig')
        try:
            if chrom not in bw.chroms():
                raise PredictError(f'{path}: chromosome {chrom!r} not in the bigWig')
            tracks.append(np.nan_to_num(bw.values(chrom, start, end, numpy=True)))
        finally:
            bw.close()
    return one_hot, np.stack(tracks, axis=-1).astype(np.float32)


def plot_profiles(path: str, title: str, positions: np.ndarray, probs: np.ndarray,
                  observed: np.ndarray | None) -> None:
    """Plus strand up, minus strand down: predicted probabilities vs observed fractions."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4), dpi=100)
    if observed is not None:
        totals = observed.sum(axis=0)
        norm = observed / np.where(totals > 0, totals, 1.0)
        ax.fill_between(positions, norm[:, 0], step='mid', color='0.6', label='observed +')
        ax.fill_between(positions, -norm[:, 1], step='mid', color='0.8', label='observed -')
    ax.plot(positions, probs[:, 0], color='tab:blue', lw=1.2, label='predicted +')
    ax.plot(positions, -probs[:, 1], color='tab:orange', lw=1.2, label='predicted -')
    ax.axhline(0, color='black', lw=0.5)
    ax.set_xlabel('position (bp)')
    ax.set_ylabel('fraction of window counts\n(+ strand up, - strand down)')
    ax.set_title(title)
    ax.legend(loc='upper right', fontsize=8, ncol=2)
    ax.ticklabel_format(axis='x', style='plain', useOffset=False)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def predict_region(saved_model: str, region: str, *, fasta: str | None = None,
                   pos_bigwig: str | None = None, neg_bigwig: str | None = None,
                   output_png: str, output_tsv: str | None = None) -> dict[str, Any]:
    """Predicts `region`, writes the plot and TSV, and returns a summary dict."""
    import tensorflow as tf

    from bpnet_tfx import export

    info, config = export.load_export_info(saved_model)
    if config.num_tasks != 1 or config.num_strands != 2:
        raise PredictError(f'{saved_model}: plotting supports one task with two strands, this '
                           f'model has {config.num_tasks} x {config.num_strands}')
    fasta = fasta or info.source.get('fasta')
    pos_bigwig = pos_bigwig or info.source.get('pos_bigwig')
    neg_bigwig = neg_bigwig or info.source.get('neg_bigwig')
    if not fasta:
        raise PredictError('--fasta is needed: the model\'s metadata names no FASTA')
    chrom, start, end = parse_region(region)
    w_start, w_end = start, end
    note = ''
    if end - start != config.sequence_length:
        w_start, w_end = centred_window(start, end, config.sequence_length)
        note = (f'region is {end - start} bp, the model takes {config.sequence_length} bp: '
                f'predicting the centred window {chrom}:{w_start}-{w_end}')
        logging.info(note)
        print(f'predict: {note}')
    one_hot, observed = read_window(fasta, (pos_bigwig, neg_bigwig), chrom, w_start, w_end)
    serve = tf.saved_model.load(saved_model).signatures[export.SIGNATURE]
    out = serve(one_hot=tf.constant(one_hot[None].astype(np.float32)))
    probs = out['profile_probs'].numpy()[0]
    counts = out['counts'].numpy()[0]
    positions = np.arange(w_start, w_end)
    title = f'{chrom}:{w_start:,}-{w_end:,}  predicted counts +{counts[0]:.0f} / -{counts[1]:.0f}'
    if observed is not None:
        title += f'  observed +{observed[:, 0].sum():.0f} / -{observed[:, 1].sum():.0f}'
    plot_profiles(output_png, title, positions, probs, observed)
    output_tsv = output_tsv or os.path.splitext(output_png)[0] + '.tsv'
    columns = {'chrom': [chrom] * len(positions), 'start': positions,
               'pred_prob_plus': probs[:, 0], 'pred_prob_minus': probs[:, 1],
               'pred_counts_plus': probs[:, 0] * counts[0],
               'pred_counts_minus': probs[:, 1] * counts[1]}
    if observed is not None:
        columns['obs_counts_plus'] = observed[:, 0]
        columns['obs_counts_minus'] = observed[:, 1]
    import pandas as pd
    pd.DataFrame(columns).to_csv(output_tsv, sep='\t', index=False, float_format='%.6g')
    return {'region': f'{chrom}:{w_start}-{w_end}', 'png': output_png, 'tsv': output_tsv,
            'predicted_counts': counts.tolist(), 'note': note,
            'observed_counts': None if observed is None else observed.sum(0).tolist()}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    from bpnet_tfx import schema
    try:
        result = predict_region(_SAVED_MODEL.value, _REGION.value, fasta=_FASTA.value,
                                pos_bigwig=_POS_BIGWIG.value, neg_bigwig=_NEG_BIGWIG.value,
                                output_png=_OUTPUT_PNG.value, output_tsv=_OUTPUT_TSV.value)
    except (PredictError, schema.SchemaError) as e:
        print(f'predict: error: {e}', file=sys.stderr)
        sys.exit(2)
    print(f"predict: {result['region']}: predicted counts "
          f"{', '.join(f'{c:.1f}' for c in result['predicted_counts'])}"
          + (f"; observed {', '.join(f'{c:.0f}' for c in result['observed_counts'])}"
             if result['observed_counts'] else '')
          + f" -> {result['png']}, {result['tsv']}")


if __name__ == '__main__':
    flags.mark_flags_as_required(['saved_model', 'region', 'output_png'])
    app.run(main)
