"""Peak memory of a training process: trains the reference model (1000 bp, batch 64) for a
fixed number of steps on a records folder and prints its own peak resident set.

    python -m benchmarks.children.train_memory RECORDS_DIR MODEL_DIR STEPS

Prints {"rss_mib"}.
"""

from __future__ import annotations

import json
import os
import resource
import sys


def main(argv: list[str]) -> None:
    from bpnet_tfx.modeling import model as model_lib
    from bpnet_tfx.records import schema
    from bpnet_tfx.training import trainer

    records, model_dir, steps = argv[0], argv[1], int(argv[2])
    info = schema.RecordsInfo.load(records)
    config = trainer.TrainConfig(
        records_dir=records,
        model_dir=model_dir,
        export_dir=os.path.join(model_dir, 'export'),
        model=model_lib.ModelConfig(sequence_length=info.sequence_length),
        batch_size=64,
        epochs=1,
        steps_per_epoch=steps,
        input_benchmark_batches=0,
    )
    trainer.train(config, info)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({'rss_mib': rss_kib / 1024}))


if __name__ == '__main__':
    main(sys.argv[1:])
