"""The train command's lines: one per trainer progress event (stdout; warnings on stderr) and
the closing summary line. Pure formatting, no TensorFlow."""

from __future__ import annotations

import math
import sys


def _epoch_line(epoch, epochs, row, seconds) -> str:
    line = (
        f'epoch {epoch}/{epochs}: loss {row["loss"]:.2f} (profile '
        f'{row["profile_nll"]:.2f}, counts {row["log_counts_mse"]:.3f})'
    )
    if 'val_loss' in row:
        line += (
            f' | val loss {row["val_loss"]:.2f} (profile {row["val_profile_nll"]:.2f}, '
            f'counts {row["val_log_counts_mse"]:.3f})'
        )
    rate = row['examples_per_second']
    rate = f'{rate:.0f} ex/s' if math.isfinite(rate) else 'first step (tracing)'
    return line + f' | {rate}, {seconds:.{1 if seconds < 10 else 0}f} s'


def _start_line(
    records,
    valid_records,
    steps_per_epoch,
    batch_size,
    replicas,
    input_examples_per_second,
    batch_reason=None,
) -> str:
    batch = f'{batch_size} ({batch_reason})' if batch_reason else f'{batch_size}'
    line = (
        f'train: {records} training records, {steps_per_epoch} steps/epoch of {batch} over '
        f'{replicas} replica(s); '
    )
    line += f'validating on {valid_records}' if valid_records is not None else 'no validation'
    if math.isfinite(input_examples_per_second):
        line += f'; input pipeline alone: {input_examples_per_second:.0f} examples/s'
    return line


_PROGRESS = {
    'skipped_shard': lambda path, records, message: (
        f'train: skipping the rest of {path} after {records} records: {message}'
    ),
    'resume': lambda checkpoint, epoch, step: (
        f'train: resuming from {checkpoint} (epoch {epoch}, step {step})'
    ),
    'start': _start_line,
    'learning_rate': lambda stale, learning_rate: (
        f'train: no improvement for {stale} epochs: learning rate -> {learning_rate:g}'
    ),
    'epoch': _epoch_line,
    'export': lambda path, weights: f'train: exporting {weights} to {path}',
    'exported': lambda path, seconds: f'train: exported in {seconds:.0f} s',
    'early_stop': lambda epoch, monitor, stale, best_epoch: (
        f'train: early stop after epoch {epoch}: no improvement of {monitor} for {stale} '
        f'epochs (best: epoch {best_epoch})'
    ),
}


def print_progress(event: str, **values) -> None:
    """The trainer's progress callback: one line per event on stdout (warnings: stderr)."""
    if event == 'warning':
        print(f'train: warning: {values["message"]}', file=sys.stderr, flush=True)
        return
    print(_PROGRESS[event](**values), flush=True)


def _rate(value: float) -> str:
    """A throughput for the summary line: 'n/a' when nothing was timed."""
    return f'{value:.0f}' if math.isfinite(value) and value > 0 else 'n/a'


def summary_line(summary) -> str:
    if summary['validation'] == 'none':
        final = summary['final'] or {}
        result = (
            f"{summary['note']} (loss {final.get('loss', float('nan')):.2f}; profile "
            f"NLL {final.get('profile_nll', float('nan')):.2f})"
        )
    else:
        best = summary['best'] or {}
        result = (
            f"best epoch {summary['best_epoch']} (val_loss "
            f"{best.get('val_loss', float('nan')):.2f}; profile NLL "
            f"{best.get('val_profile_nll', float('nan')):.2f})"
        )
    steps = ''
    if 'steps' in summary:
        steps = f"{summary['steps']} steps of {summary['batch_size']}, "
    return (
        f"train: {summary['epochs']} epochs, {result}, {steps}"
        f"{_rate(summary['examples_per_second'])} examples/s training, "
        f"{_rate(summary['input_examples_per_second'])} examples/s input pipeline alone, on "
        f"{summary['replicas']} replica(s), {summary['wall_seconds']:.0f} s -> "
        f"{summary['export_dir']}"
    )
