"""Models with control tracks for the attribution and contributions tests.

`control_model` (a pytest fixture, registered as a plugin in conftest.py) trains once per
session; `wide_joint_control_model(tmp_path)` exports an untrained wide-input joint-loss one.
"""

import numpy as np
import pyBigWig
import pytest

from bpnet_tfx import sequence

CONTROL_STARTS = (100, 400, 700, 1000, 1300, 1600)  # the valid windows (200 bp) on chrA


def write_bigwig(path, chrom, values):
    bw = pyBigWig.open(str(path), 'w')
    bw.addHeader([(chrom, len(values))])
    bw.addEntries(chrom, 0, values=np.asarray(values, np.float64), span=1, step=1)
    bw.close()


@pytest.fixture(scope='session')
def control_model(tmp_path_factory):
    """A 2-task BPNet trained briefly with control tracks, and what it was trained on.

    A 2,000-bp genome (chrA), control bigWigs of a smooth varying rate, records (10-bp jitter
    margin) of the windows in CONTROL_STARTS holding the control counts read from those
    bigWigs, and an export whose metadata names the FASTA and the control bigWigs.

    Returns a dict: export, records, fasta, seq, control_pos, control_neg, control (2000, 2).
    """
    import tensorflow as tf

    from bpnet_tfx import model as model_lib
    from bpnet_tfx import schema, trainer

    root = tmp_path_factory.mktemp('control_model')
    rng = np.random.default_rng(5)
    seq = ''.join(rng.choice(list('ACGT'), 2000))
    fasta = root / 'genome.fa'
    fasta.write_text('>chrA\n' + '\n'.join(seq[i : i + 60] for i in range(0, 2000, 60)) + '\n')
    rate = 2 + 1.5 * np.sin(np.arange(2000) / 40.0)
    control = np.stack([rng.poisson(rate), rng.poisson(rate[::-1])], -1).astype(np.float32)
    paths = {s: root / f'control_{s}.bw' for s in ('pos', 'neg')}
    for k, s in enumerate(('pos', 'neg')):
        write_bigwig(paths[s], 'chrA', control[:, k])
    records = root / 'records'
    records.mkdir()
    tasks = ('a', 'b')
    source_tasks = [
        {
            'name': t,
            'control_pos_bigwig': str(paths['pos']),
            'control_neg_bigwig': str(paths['neg']),
        }
        for t in tasks
    ]
    totals = []
    for split, starts in (('train', CONTROL_STARTS * 2), ('valid', CONTROL_STARTS)):
        with tf.io.TFRecordWriter(
            str(records / schema.shard_filename(split, 0, 1)), options=schema.COMPRESSION
        ) as writer:
            for s in starts:
                lo, hi = s - 10, s + 210
                ctrl = np.repeat(control[lo:hi, None], 2, axis=1)  # (220, tasks, 2)
                profile = rng.poisson(1.0 + ctrl).astype(np.float32)
                totals.append(profile[10:210].sum(axis=(0, 2)))
                writer.write(
                    schema.encode_record(
                        f'chrA:{s}-{s + 200}',
                        'chrA',
                        lo,
                        sequence.one_hot(seq[lo:hi]),
                        profile,
                        control=ctrl,
                    )
                )
    info = schema.RecordsInfo(
        sequence_length=200,
        max_jitter=10,
        tasks=tasks,
        has_control=True,
        split_counts={'train': 12, 'valid': 6},
        num_shards={'train': 1, 'valid': 1},
        median_total_counts=tuple(np.median(totals, axis=0).tolist()),
        source={'fasta': str(fasta), 'tasks': source_tasks},
    )
    info.save(str(records))
    model_dir = root / 'model'
    summary = trainer.train(
        trainer.TrainConfig(
            records_dir=str(records),
            model_dir=str(model_dir),
            export_dir=str(model_dir / 'export'),
            model=model_lib.ModelConfig(
                sequence_length=200, num_tasks=2, filters=8, num_dilated_layers=2, use_control=True
            ),
            epochs=2,
            batch_size=4,
            learning_rate=4e-3,
            counts_loss_weight=1.0,
            input_benchmark_batches=0,
            precision='float32',
        ),
        info,
    )
    return {
        'export': summary['export_dir'],
        'records': str(records),
        'fasta': str(fasta),
        'seq': seq,
        'control_pos': str(paths['pos']),
        'control_neg': str(paths['neg']),
        'control': control,
    }


def serve(export_dir):
    """The SavedModel's serving_default, called directly: (one_hot, control) -> outputs."""
    import tensorflow as tf

    loaded = tf.saved_model.load(export_dir)
    fn = loaded.signatures['serving_default']

    def call(one_hot, control):
        out = fn(one_hot=tf.constant(one_hot, tf.float32), control=tf.constant(control, tf.float32))
        return {k: v for k, v in out.items()}

    call.loaded = loaded  # keeps the variables alive
    return call


def window_controls(control_model, starts):
    """(N, 200, 2 tasks, 2) observed control counts of the windows at `starts`."""
    c = control_model['control']
    return np.stack([np.repeat(c[s : s + 200, None], 2, axis=1) for s in starts])


def wide_joint_control_model(tmp_path, counts_head: str = 'global_pool'):
    """An untrained 2-task model with 60-bp inputs -> 20-bp outputs, the joint profile loss,
    control tracks and `counts_head` (a summed head's rate convolutions and control weights
    drawn at random instead of zero), exported with metadata naming its FASTA (chrA, 300 bp)
    and control bigWig (both strands of both tasks).

    Returns a dict: export, model, seq, control (300,), x (window 100-160, (1, 60, 4)), ctrl
    (its control, the 20 bp centred in it, (1, 20, 2, 2)).
    """
    import keras

    from bpnet_tfx import export, schema
    from bpnet_tfx import model as model_lib

    keras.utils.set_random_seed(3)
    config = model_lib.ModelConfig(
        sequence_length=60,
        output_length=20,
        num_tasks=2,
        filters=8,
        stem_kernel_size=5,
        num_dilated_layers=2,
        profile_kernel_size=5,
        profile_loss='joint',
        use_control=True,
        counts_head=counts_head,
    )
    model = model_lib.build_bpnet(config)
    rng = np.random.default_rng(0)
    for v in model.variables:
        if 'counts_rate_conv' in v.path or 'counts_control_weight' in v.path:
            v.assign(rng.normal(0, 0.5, v.shape).astype(np.float32))
    seq = ''.join(rng.choice(list('ACGT'), 300))
    fasta = tmp_path / 'g.fa'
    fasta.write_text('>chrA\n' + seq + '\n')
    control = rng.poisson(3, 300).astype(np.float32)
    write_bigwig(tmp_path / 'c.bw', 'chrA', control)
    info = schema.RecordsInfo(
        sequence_length=60,
        output_length=20,
        max_jitter=0,
        tasks=('a', 'b'),
        has_control=True,
        source={
            'fasta': str(fasta),
            'tasks': [
                {
                    'control_pos_bigwig': str(tmp_path / 'c.bw'),
                    'control_neg_bigwig': str(tmp_path / 'c.bw'),
                }
            ]
            * 2,
        },
    )
    path = export.export_saved_model(model, info, config, str(tmp_path / 'export'))
    x = sequence.one_hot(seq[100:160])[None].astype(np.float32)
    ctrl = np.broadcast_to(control[120:140, None, None], (1, 20, 2, 2)).astype(np.float32)
    return {'export': path, 'model': model, 'seq': seq, 'control': control, 'x': x, 'ctrl': ctrl}
