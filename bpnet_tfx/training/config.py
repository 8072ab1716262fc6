"""A training run's config (`TrainConfig`, made from flags once by the main), its one-line
error (`TrainError`) and the counts loss weight of each task."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from bpnet_tfx.common.errors import BpnetError
from bpnet_tfx.modeling.config import ModelConfig
from bpnet_tfx.records import schema


class TrainError(BpnetError):
    """A problem with the flags, the records or the model folder, reported in one line."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, made from flags once by the main."""

    records_dir: str
    model_dir: str
    export_dir: str
    model: ModelConfig
    epochs: int = 25
    batch_size: int = 512
    learning_rate: float = 1e-3
    counts_loss_weight: float | tuple[float, ...] = 10.0  # one, or one per task
    # The counts head's bias starts at the median log count (always with normalized_pool).
    init_counts_bias: bool = False
    shuffle_buffer: int = 10_000
    reverse_complement: bool = True
    jitter: bool = True
    cache: bool = False
    skip_corrupt_records: bool = False
    steps_per_epoch: int | None = None
    checkpoint_every_steps: int = 0
    input_benchmark_batches: int = 20
    strategy: str = 'auto'
    precision: str = 'auto'
    jit_compile: bool = False
    patience: int = 0
    reduce_lr_patience: int = 0
    cpu_replicas: int = 1
    seed: int = 0
    validation: str = 'records'  # 'none': no validation pass; the export is the last epoch

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d['model'] = self.model.to_dict()
        return d


def resolve_counts_loss_weight(value: str, info: schema.RecordsInfo) -> tuple[float, ...]:
    """Parses --counts_loss_weight into one weight per task.

    A non-negative number applies to every task; 'auto' gives each task the median total
    counts of its training records / 10 (the BPNet and ChromBPNet authors' rule).
    """
    if value == 'auto':
        if len(info.median_total_counts) != info.num_tasks:
            raise TrainError(
                "--counts_loss_weight=auto needs median_total_counts per task in "
                "the records' metadata.json; remake the records or give a number"
            )
        return tuple(float(m) / 10.0 for m in info.median_total_counts)
    try:
        weight = float(value)
    except ValueError:
        raise TrainError(
            f"--counts_loss_weight must be a number or 'auto', got {value!r}"
        ) from None
    if not math.isfinite(weight) or weight < 0:
        raise TrainError(f'--counts_loss_weight must be finite and >= 0, got {value}')
    return (weight,) * info.num_tasks


def task_weights(config: TrainConfig, num_tasks: int) -> tuple[float, ...]:
    """The counts loss weight of each task."""
    w = config.counts_loss_weight
    weights = tuple(w) if isinstance(w, (tuple, list)) else (float(w),) * num_tasks
    if len(weights) != num_tasks:
        raise TrainError(f'{len(weights)} counts loss weights for {num_tasks} tasks')
    return weights
