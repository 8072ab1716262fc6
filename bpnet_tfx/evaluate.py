"""Evaluates an exported BPNet SavedModel on one split of a records folder.

    python -m bpnet_tfx.evaluate --saved_model=DIR --records_dir=DIR --split=valid \
        --output_json=FILE

Reports, overall and per task and strand: profile_nll (the training loss's multinomial NLL),
uniform_profile_nll (a flat profile), oracle_profile_nll (the simulator's noise-free profile,
when the records carry it: the floor no model can beat), profile_jsd, profile_auprc (BPNet's
base-resolution auPRC: positions with >= 0.015 of the window's counts positive, <= 0.005
negative, windows with < 2.5 / 0.015 counts skipped) with profile_auprc_shuffled (the same with
predictions permuted along positions, fixed seed), count_pearson and count_spearman on
log(1 + total counts), sequence_count_pearson_bound (simulated records: the count_pearson of
the totals the sequence alone determines, the reference for count_pearson), and n_examples.
'Overall' profile NLLs are per example summed over tasks and strands, exactly as the training
loss sums them. A progress line goes to stderr every --progress_every batches. Records whose
task names differ from the model's are refused unless --allow_task_mismatch. Each batch is
split over every visible GPU (or --cpu_replicas logical CPUs); the metrics do not depend on
it. Default runs print progress and the table only; -v 0 shows logs.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from bpnet_tfx.common import cli

_SAVED_MODEL = flags.DEFINE_string('saved_model', None, 'SavedModel folder written by train.')
_RECORDS_DIR = flags.DEFINE_string('records_dir', None, 'Records folder to evaluate on.')
_SPLIT = flags.DEFINE_string('split', 'valid', 'Split to evaluate: train, valid or test.')
_ALLOW_TASK_MISMATCH = flags.DEFINE_bool(
    'allow_task_mismatch',
    False,
    "Evaluate records whose task names differ from the model's, matching tasks by position.",
)
_OUTPUT_JSON = flags.DEFINE_string(
    'output_json', None, 'Where to write the metrics; default: print only.'
)
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size', 256, 'Examples per prediction batch, split over the devices.'
)
_CPU_REPLICAS = flags.DEFINE_integer(
    'cpu_replicas',
    1,
    'With no GPU: split the CPU into this many logical devices and split each batch over '
    'them (GPUs: every visible GPU is used).',
)
_PROGRESS_EVERY = flags.DEFINE_integer(
    'progress_every', 50, 'Print a progress line every this many batches.'
)


def _check_records() -> None:
    """Before TensorFlow starts: the records folder's metadata.json."""
    from bpnet_tfx.records import schema

    schema.RecordsInfo.load(_RECORDS_DIR.value)


def main(argv):
    del argv  # cli.run refuses extra arguments.
    from bpnet_tfx.common import devices
    from bpnet_tfx.inference import evaluation

    devices.configure_cpu_replicas(_CPU_REPLICAS.value)

    start = time.perf_counter()
    result = evaluation.evaluate(
        _SAVED_MODEL.value,
        _RECORDS_DIR.value,
        _SPLIT.value,
        batch_size=_BATCH_SIZE.value,
        progress_every=_PROGRESS_EVERY.value,
        allow_task_mismatch=_ALLOW_TASK_MISMATCH.value,
    )
    print(evaluation.format_table(result))
    if _OUTPUT_JSON.value:
        os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT_JSON.value)), exist_ok=True)
        with open(_OUTPUT_JSON.value, 'w') as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write('\n')
    print(
        f"evaluate: {result['overall']['n_examples']} {result['split']} examples, "
        f"{time.perf_counter() - start:.1f} s"
        + (f' -> {_OUTPUT_JSON.value}' if _OUTPUT_JSON.value else '')
    )


if __name__ == '__main__':
    flags.mark_flags_as_required(['saved_model', 'records_dir'])
    cli.start('evaluate', main, checks=_check_records)
