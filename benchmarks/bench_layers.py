"""The convolutions' own ceiling: how near BPNet's layers alone come to the matmul peak.

    .venv/bin/python -m benchmarks.bench_layers [--batch_size=64 --steps=20]

In interleaved pairs under common.py's protocol, each pair running:
  - the reference model's dilated tower (9 residual layers, kernel 3, dilations 2-512, 64
    filters, relu) forward and backward (gradients of the input and every kernel), built from
    bpnet_tfx's Conv1D (ours, what training runs) and from keras.layers.Conv1D (stock);
  - the profile head (64 channels -> 2 strands, kernel 25) forward and backward, both ways;
  - the machine's float32 matmul throughput through TensorFlow (bench_train's peak).
Reported: the tower's training GFLOP/s over the matmul peak, the most a whole training step
could reach where the tower is 92% of its FLOPs and the rest (stem, head, loss, optimiser)
runs slower, and ours against stock for the tower and the head.
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks import bench_train, common


def reference():
    """The reference model's config (bpnet_tfx.modeling's defaults), whose layers run here."""
    from bpnet_tfx.modeling import model as model_lib

    return model_lib.ModelConfig()


def tower_flops(config, batch: int, length: int) -> float:
    """Training FLOPs of the dilated tower for one batch: 3 x the forward's 2 x MACs."""
    f = config.filters
    return 3 * 2 * batch * length * config.num_dilated_layers * config.dilated_kernel_size * f * f


def head_flops(config, batch: int, length: int) -> float:
    """Training FLOPs of the profile head for one batch."""
    outputs = config.num_tasks * config.num_strands
    return 3 * 2 * batch * length * config.profile_kernel_size * config.filters * outputs


def _timed_gflops(step, x, flops: float, steps: int) -> float:
    step(x).numpy()  # traces
    start = time.perf_counter()
    for _ in range(steps):
        out = step(x)
    out.numpy()
    return steps * flops / (time.perf_counter() - start) / 1e9


def _training_step(blocks, residual: bool):
    """A tf.function: forward through `blocks`, a weighted sum, gradients of the input and
    every weight."""
    import tensorflow as tf

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            h = x
            for block in blocks:
                h = h + block(h) if residual else block(h)
            loss = tf.reduce_sum(h * tf.sin(h))
        weights = [w for block in blocks for w in block.trainable_weights]
        grads = tape.gradient(loss, [x, *weights])
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    return step


def layers_arm(config, stock: bool, batch: int, length: int, steps: int):
    """The tower's and the head's training GFLOP/s, built stock or ours."""

    def run() -> dict:
        import tensorflow as tf

        from bpnet_tfx.modeling import layers

        tf.random.set_seed(0)
        f = config.filters
        x = tf.random.normal((batch, length, f))
        kernel = config.dilated_kernel_size
        tower = [
            layers.conv1d(stock, f, kernel, padding='same', dilation_rate=2**i, activation='relu')
            for i in range(1, config.num_dilated_layers + 1)
        ]
        outputs = config.num_tasks * config.num_strands
        head = [layers.conv1d(stock, outputs, config.profile_kernel_size, padding='same')]
        tower_step, head_step = _training_step(tower, True), _training_step(head, False)
        return {
            'tower': _timed_gflops(tower_step, x, tower_flops(config, batch, length), steps),
            'head': _timed_gflops(head_step, x, head_flops(config, batch, length), steps),
        }

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch_size', type=int, default=64, help='Batch of every step.')
    parser.add_argument('--length', type=int, default=1000, help='Window length in bp.')
    parser.add_argument('--steps', type=int, default=20, help='Timed steps of every arm.')
    common.add_protocol_flags(parser)
    args = parser.parse_args()
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    batch, length = args.batch_size, args.length
    print(f'batch {batch}, {length} bp, {args.steps} timed steps per arm', flush=True)
    config = reference()
    arms = {
        'ours': layers_arm(config, False, batch, length, args.steps),
        'stock': layers_arm(config, True, batch, length, args.steps),
        'matmul_peak': bench_train.matmul_peak_gflops,
    }
    ratios = [
        common.Ratio('dilated tower (ours) GFLOP/s / matmul peak', 'ours.tower', 'matmul_peak'),
        common.Ratio('dilated tower: ours / stock', 'ours.tower', 'stock.tower'),
        common.Ratio('profile head: ours / stock', 'ours.head', 'stock.head'),
    ]
    result = common.compare(arms, ratios, common.protocol_from_args(args))
    common.report('bench_layers', {'layers': result}, batch_size=batch, length=length)


if __name__ == '__main__':
    main()
