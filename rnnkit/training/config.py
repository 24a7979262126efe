"""``TrainConfig``: every option of ``rnnkit train`` that is not a model field, in sections.

Each section (optimization, schedule, batching, checkpointing, validation, distributed, precision,
run) is a frozen dataclass; :class:`TrainConfig` inherits them all, so code reads one flat
``cfg.lr`` and a checkpoint stores one flat ``train_config`` dict, as before the split. Fields that
only one task uses live in that task's section (:class:`LmTrainOptions`,
:class:`TranslationTrainOptions`), which the task class names as its ``train_options``; the
command line lists those only when the task applies. Each field's metadata carries its help text
and the ``--help`` panel it is listed under, so these dataclasses are the single source of truth
for names, types, defaults and help. The built-in task sections are defined here, not in
``rnnkit/tasks/``, because the tasks import the training modules that import this one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from rnnkit.errors import RnnkitError


def _f(default: Any, help: str, group: str) -> Any:  # noqa: A002
    return dataclasses.field(default=default, metadata={"help": help, "group": group})


BATCH, OPTIM, SCHED, VALID = "Batching", "Optimization", "Schedule", "Validation"
CKPT, DIST, PREC, RUN = "Checkpointing", "Distributed", "Precision", "Run"
LM_TASK, MT_TASK = "Task options (lm)", "Task options (translation)"


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """How examples are grouped into batches."""

    batch_size: int = _f(
        20,
        "Sentences per batch (each worker takes whole batches); for lm, the number of parallel "
        "streams of the whole job, split between the workers.",
        BATCH,
    )
    valid_batch_size: int | None = _f(
        None, "Batch size for validation (default: --batch-size).", BATCH
    )
    max_tokens: int = _f(
        0,
        "translation/tagging: most tokens (padding included) per batch; 0: --batch-size only.",
        BATCH,
    )


@dataclasses.dataclass(frozen=True)
class LmTrainOptions:
    """Options of the ``lm`` task: truncated back-propagation through time."""

    bptt: int = _f(35, "lm: tokens per truncated-BPTT window.", LM_TASK)
    random_bptt: bool = _f(
        False, "lm: randomize the window length (AWD-LSTM: N(bptt, 5), bptt/2 w.p. 0.05).", LM_TASK
    )


@dataclasses.dataclass(frozen=True)
class TranslationTrainOptions:
    """Options of the ``translation`` task: length limits and BLEU during validation."""

    max_source_positions: int = _f(
        1024, "translation: longer training pairs are skipped (with a warning).", MT_TASK
    )
    max_target_positions: int = _f(
        1024, "translation: longer training pairs are skipped (with a warning).", MT_TASK
    )
    eval_bleu: bool = _f(
        False, "translation: also decode the validation set and report sacreBLEU.", MT_TASK
    )
    eval_bleu_args: str = _f(
        "{}", 'translation: JSON of decoding options for --eval-bleu, e.g. {"beam": 4}.', MT_TASK
    )


@dataclasses.dataclass(frozen=True)
class OptimizationOptions:
    """The loss, the optimizer and the gradient."""

    loss_average: Literal["tokens", "sequences"] = _f(
        "tokens",
        "Normalize the loss by target tokens (mean) or by sequences (summed over time: the "
        "convention of Zaremba et al., whose lr 1 / clip 5 assume it).",
        OPTIM,
    )
    criterion: str = _f("cross_entropy", "cross_entropy | label_smoothed_cross_entropy.", OPTIM)
    label_smoothing: float = _f(0.1, "label_smoothed_cross_entropy: mass spread uniformly.", OPTIM)
    optimizer: str = _f("sgd", "sgd | adam | adamw | asgd.", OPTIM)
    lr: float = _f(1.0, "Learning rate.", OPTIM)
    momentum: float = _f(0.0, "SGD momentum.", OPTIM)
    weight_decay: float = _f(0.0, "L2 penalty (decoupled for adamw).", OPTIM)
    adam_betas: tuple[float, ...] = _f((0.9, 0.999), "Adam betas, e.g. 0.9,0.98.", OPTIM)
    asgd_t0: int = _f(0, "asgd: update at which averaging starts.", OPTIM)
    clip_norm: float = _f(0.0, "Clip the global gradient norm to this value (0: off).", OPTIM)
    update_freq: int = _f(
        1, "Accumulate gradients over N batches per update (DDP syncs only the last).", OPTIM
    )


@dataclasses.dataclass(frozen=True)
class ScheduleOptions:
    """The learning-rate schedule and when training stops."""

    lr_scheduler: str = _f("fixed", "fixed | zaremba | plateau | cosine | inverse_sqrt.", SCHED)
    lr_decay: float = _f(0.5, "zaremba/plateau: multiply the lr by this factor.", SCHED)
    decay_start_epoch: int = _f(4, "zaremba: decay after every epoch past this one.", SCHED)
    lr_patience: int = _f(0, "plateau: epochs without improvement before decaying.", SCHED)
    warmup_updates: int = _f(0, "cosine/inverse_sqrt: linear warmup updates.", SCHED)
    min_lr: float = _f(0.0, "Floor of the learning rate.", SCHED)
    max_epoch: int = _f(0, "Stop after this many epochs (0: no limit).", SCHED)
    max_update: int = _f(0, "Stop after this many updates (0: no limit).", SCHED)
    stop_time_hours: float = _f(
        0.0,
        "Stop (saving checkpoint_last.pt) after this much wall time in this run (0: off).",
        SCHED,
    )
    max_hours: float = _f(
        0.0,
        "Stop after this much wall time in all, summed over resumed runs (0: no limit); "
        "cosine then decays over these hours, so the schedule fits the machine's speed.",
        SCHED,
    )


@dataclasses.dataclass(frozen=True)
class ValidationOptions:
    """What is validated, how often, and which result counts as best."""

    valid_subset: str = _f(
        "valid", "Comma-separated splits to validate on (first picks best).", VALID
    )
    validate_interval_updates: int = _f(
        0, "Also validate every N updates (0: per epoch only).", VALID
    )
    patience: int = _f(
        0, "Stop when validation has not improved for N validations (0: off).", VALID
    )
    best_checkpoint_metric: str = _f(
        "loss", "Validation metric that picks checkpoint_best.pt and drives --patience.", VALID
    )
    maximize_best_checkpoint_metric: bool = _f(
        False, "Higher --best-checkpoint-metric is better (e.g. bleu, f1).", VALID
    )


@dataclasses.dataclass(frozen=True)
class CheckpointingOptions:
    """Which checkpoints are written and kept, and how a run resumes."""

    keep_last_epochs: int = _f(-1, "Keep only the last N checkpoint{epoch}.pt (-1: all).", CKPT)
    no_epoch_checkpoints: bool = _f(False, "Only write checkpoint_last.pt and _best.pt.", CKPT)
    save_interval_updates: int = _f(
        0,
        "Also save every N updates: checkpoint_{epoch}_{updates}.pt and checkpoint_last.pt, so "
        "a crash or an elastic restart redoes at most N updates (0: at epoch ends only).",
        CKPT,
    )
    keep_interval_updates: int = _f(
        -1, "Keep only the last N checkpoint_{epoch}_{updates}.pt (-1: all).", CKPT
    )
    keep_best_checkpoints: int = _f(
        0,
        "Also keep the N best checkpoints by --best-checkpoint-metric as "
        "checkpoint.best_{metric}_{value}.pt (0: none).",
        CKPT,
    )
    no_save_optimizer_state: bool = _f(
        False,
        "Leave the optimizer's state out of the checkpoints (smaller files; a resumed run then "
        "starts a fresh optimizer, as --reset-optimizer).",
        CKPT,
    )
    restore_file: str = _f(
        "checkpoint_last.pt",
        "Resume from this file: a name in --save-dir, or a path to another run's checkpoint.",
        CKPT,
    )
    finetune_from_model: str = _f(
        "",
        "Start from this checkpoint's weights only (fresh optimizer, schedule, counters and data "
        "position); refused when --save-dir already holds another run's checkpoint_last.pt (the "
        "same command again resumes its own).",
        CKPT,
    )
    reset: bool = _f(False, "Ignore an existing checkpoint in --save-dir and start over.", CKPT)
    reset_optimizer: bool = _f(
        False,
        "Resume weights, schedule and progress but start a fresh optimizer (needed to change "
        "--optimizer on resume).",
        CKPT,
    )
    reset_lr_scheduler: bool = _f(
        False,
        "On resume, do not load the learning-rate schedule's state: a fresh one from --lr, "
        "placed at the run's epoch and update.",
        CKPT,
    )
    reset_dataloader: bool = _f(
        False,
        "On resume, restart the epoch in progress at its first batch, not mid-epoch (counters "
        "kept).",
        CKPT,
    )
    reset_meters: bool = _f(
        False, "On resume, forget the best validation score and --patience's count.", CKPT
    )


@dataclasses.dataclass(frozen=True)
class DistributedOptions:
    """Several workers (the number of workers is a command-line option, not part of a run)."""

    ddp_timeout: float = _f(
        300.0,
        "Several workers: seconds a collective waits for the others before the run fails, which "
        "bounds how long a hung or lost worker can stall the job.",
        DIST,
    )


@dataclasses.dataclass(frozen=True)
class PrecisionOptions:
    """Number formats and compilation."""

    amp: Literal["none", "bf16", "fp16"] = _f(
        "none",
        "Mixed precision: bf16 autocast, or fp16 autocast + gradient scaler (CUDA). Measured "
        "(benchmarks/RESULTS.md): bf16 1.38x on a CPU with AVX-512-BF16; slower on AVX2 CPUs "
        "and for the zaremba-medium and multi30k presets on an H200 (0.76-0.79x).",
        PREC,
    )
    compile: bool = _f(False, "torch.compile the model (CUDA; on CPU: a warning, no-op).", PREC)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Seed, device, threads and logging."""

    seed: int = _f(1, "Random seed (model init, dropout, data order).", RUN)
    device: str = _f("auto", "auto | cpu | cuda | cuda:N.", RUN)
    threads: int = _f(0, "CPU threads for torch (0: torch's default).", RUN)
    log_interval: int = _f(
        100, "Updates between progress lines in the log (fairseq's meaning; 0: off).", RUN
    )
    log_format: Literal["simple", "json"] = _f(
        "simple", "The log on stderr: simple text lines, or one JSON object per line.", RUN
    )
    log_file: str = _f("", "Also append the log to this file.", RUN)
    tensorboard_logdir: str = _f(
        "",
        "Write train/valid scalars for TensorBoard here (needs the extra rnnkit[tensorboard]).",
        RUN,
    )


# In --help order; a dataclass lists the fields of its last base first, so TrainConfig names
# them in reverse.
SECTIONS: tuple[type, ...] = (
    BatchingOptions, OptimizationOptions, ScheduleOptions, ValidationOptions,
    CheckpointingOptions, DistributedOptions, PrecisionOptions, RunOptions,
)  # fmt: skip
TASK_SECTIONS: tuple[type, ...] = (LmTrainOptions, TranslationTrainOptions)


@dataclasses.dataclass(frozen=True)
class TrainConfig(
    RunOptions, PrecisionOptions, DistributedOptions, CheckpointingOptions, ValidationOptions,
    ScheduleOptions, OptimizationOptions, TranslationTrainOptions, LmTrainOptions,
    BatchingOptions,
):  # fmt: skip
    """Options of one training run (model fields live in the architecture's config).

    Flat: every section's fields are attributes of this one frozen dataclass.
    """

    def __post_init__(self) -> None:
        problems = [message for ok, message in _range_rules(self) if not ok]
        if problems:
            raise RnnkitError("; ".join(problems))


_PLUGIN_CONFIGS: dict[type, type] = {}


def train_config_class(train_options: type | None) -> type:
    """The config class of a run whose task declares ``train_options`` (a dataclass or None).

    :class:`TrainConfig` when it adds no field (the built-in tasks' sections are part of it);
    for a plugin task's own section, a flat subclass of both, so ``cfg.<field>`` works there too.
    """
    if train_options is None:
        return TrainConfig
    own = {f.name for f in dataclasses.fields(train_options)}
    if own <= {f.name for f in dataclasses.fields(TrainConfig)}:
        return TrainConfig
    if train_options not in _PLUGIN_CONFIGS:
        _PLUGIN_CONFIGS[train_options] = dataclasses.make_dataclass(
            "TrainConfig", [], bases=(train_options, TrainConfig), frozen=True
        )
    return _PLUGIN_CONFIGS[train_options]


def _at_least(cfg: TrainConfig, name: str, low: int) -> tuple[bool, str]:
    value = getattr(cfg, name)
    return value >= low, f"--{name.replace('_', '-')} must be at least {low} (got {value})"


def _within(cfg: TrainConfig, name: str, test: Any, rule: str) -> tuple[bool, str]:
    value = getattr(cfg, name)
    ok = math.isfinite(value) and test(value)
    return ok, f"--{name.replace('_', '-')} must be {rule} (got {value})"


def _range_rules(cfg: TrainConfig) -> list[tuple[bool, str]]:
    """(holds, message naming the option) for every range a value must lie in.

    Checked when the config is built, so a bad value is one line before any work, not a
    ``ZeroDivisionError`` in the first batch or a ``ValueError`` from torch's optimizer.
    """
    nonneg, positive = (lambda v: v >= 0), (lambda v: v > 0)
    counts = (
        "max_tokens",
        "max_epoch",
        "max_update",
        "patience",
        "validate_interval_updates",
        "save_interval_updates",
        "keep_best_checkpoints",
        "threads",
        "asgd_t0",
        "lr_patience",
        "warmup_updates",
        "decay_start_epoch",
    )
    rules = [
        # 0 sentences means "no sentence limit", which only a token budget can replace
        (cfg.batch_size >= 1 or (cfg.batch_size == 0 and cfg.max_tokens > 0),
         f"--batch-size must be at least 1 (got {cfg.batch_size}), or 0 with --max-tokens"),
        (cfg.valid_batch_size is None or cfg.valid_batch_size >= 1,
         f"--valid-batch-size must be at least 1 (got {cfg.valid_batch_size})"),
        _at_least(cfg, "bptt", 1),
        _at_least(cfg, "update_freq", 1),
        _at_least(cfg, "max_source_positions", 1),
        _at_least(cfg, "max_target_positions", 1),
        _at_least(cfg, "keep_last_epochs", -1),
        _at_least(cfg, "keep_interval_updates", -1),
        *(_at_least(cfg, name, 0) for name in counts),
        _within(cfg, "lr", positive, "> 0"),
        *(_within(cfg, name, nonneg, ">= 0") for name in
          ("momentum", "weight_decay", "clip_norm", "min_lr", "stop_time_hours", "max_hours")),
        _at_least(cfg, "log_interval", 0),
        (cfg.lr_scheduler != "cosine" or cfg.max_update > 0 or cfg.max_hours > 0,
         "--lr-scheduler cosine needs --max-update or --max-hours: the length it decays over"),
        _within(cfg, "label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
        _within(cfg, "lr_decay", lambda v: 0 < v <= 1, "in (0, 1]"),
        _within(cfg, "ddp_timeout", positive, "positive (seconds)"),
        (len(cfg.adam_betas) == 2 and all(0 <= b < 1 for b in cfg.adam_betas),
         f"--adam-betas must be two values in [0, 1), e.g. 0.9,0.98 (got {cfg.adam_betas})"),
        (all(cfg.valid_subset.split(",")),
         f"--valid-subset must be comma-separated split names (got {cfg.valid_subset!r})"),
    ]  # fmt: skip
    return rules
