"""The :class:`Task` contract: everything that differs between problems, behind one interface.

A task owns how ``rnnkit preprocess`` reads its raw inputs and which dictionaries and splits it
writes (class methods: no task object exists before its data does), how it is rebuilt from a
data directory or a checkpoint, which model it builds, its batches (the train iterator always
takes ``shard=(rank, world)``), its loss, its validation and metrics, and the class of the
inference object :func:`rnnkit.load` returns (``inference``). The training loop, ``preprocess``
and the command line reach a task only through these names, never by its name.

Why a :class:`typing.Protocol` and not an ABC: a plugin task (``--user-dir``, an entry point)
need not inherit anything from rnnkit, only have the members; type checkers check the built-in
tasks against it structurally. Because a protocol cannot check a *class* at run time (it has
data members), :meth:`TaskRegistry.add` checks every registered class with
:func:`check_task_class`, naming what is missing, so a broken plugin fails when it registers,
not in the middle of a run. :class:`TaskBase` is an optional mixin with the defaults most tasks
want.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import torch

from rnnkit.data.corpus import Stream
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.registry import Registry

if TYPE_CHECKING:
    from rnnkit.data.preprocess import PreprocessConfig
    from rnnkit.tokenizers import Tokenizer
    from rnnkit.training.config import TrainConfig
    from rnnkit.training.criteria import Criterion

Shard = tuple[int, int]  # (rank, world): this worker's share of the data
LossResult = tuple[torch.Tensor, int, int]  # summed loss, its tokens, its sequences


@dataclass(frozen=True)
class Batching:
    """How inference callers batch a split: at most ``batch_size`` sequences and
    ``max_tokens`` padded tokens (0 or None: no token bound) a batch; ``valid_batch_size``
    overrides ``batch_size`` for validation (None: the same)."""

    batch_size: int
    max_tokens: int | None = None
    valid_batch_size: int | None = None

    @property
    def eval_batch_size(self) -> int:
        """The sequences per batch when evaluating."""
        return self.valid_batch_size or self.batch_size


@dataclass(frozen=True)
class DictionarySpec:
    """How ``preprocess`` gets one stream's dictionary: ``reuse`` a ``dict.txt`` (a path), or
    count the train split keeping symbols seen ``threshold`` times or more, ``nwords`` of them
    (-1: all). ``every_split`` counts the valid and test splits too: for a closed set of
    targets (values, classes) where one unseen in train must still get its own symbol."""

    reuse: str | None
    threshold: int = 0
    nwords: int = -1
    every_split: bool = False


@runtime_checkable
class TrainIterator(Protocol):
    """One epoch of a worker's training batches, resumable from :meth:`state_dict`."""

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...

    @property
    def batches_done(self) -> int: ...

    def state_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class Task(Protocol):
    """What the library asks of a task (see the module docstring; :class:`TaskBase` has
    defaults). ``cfg`` is always a :class:`~rnnkit.training.config.TrainConfig`."""

    name: ClassVar[str]  # the registered name, written into preprocess.json and checkpoints
    inference: ClassVar[type | None]  # the class of what rnnkit.load returns for this task
    train_options: ClassVar[type | None]  # a dataclass of the task's own training options
    dictionary: Dictionary  # the dictionary whose padding the loss ignores
    tokenizer: Tokenizer
    data_dir: str | None  # None when rebuilt from a checkpoint

    # --- preprocess: class methods, there is no data (and so no task object) yet ------------
    @classmethod
    def check_preprocess(cls, cfg: PreprocessConfig) -> None:
        """Reject preprocess options that make no sense for this task (one-line RnnkitError)."""
        ...

    @classmethod
    def streams(cls, cfg: PreprocessConfig) -> tuple[Stream, ...]:
        """The line-parallel inputs of a split, in order, with their output and dict names."""
        ...

    @classmethod
    def input_files(cls, prefix: str, streams: Sequence[Stream]) -> tuple[Path, ...]:
        """The raw file of each stream for a ``--trainpref``-style ``prefix``."""
        ...

    @classmethod
    def dictionary_specs(
        cls, cfg: PreprocessConfig, streams: Sequence[Stream]
    ) -> list[DictionarySpec]:
        """How each stream's dictionary is made (reused or counted, and how)."""
        ...

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_data_dir(cls, data_dir: str, meta: Mapping[str, Any]) -> Task:
        """The task of a data directory whose ``preprocess.json`` is ``meta``."""
        ...

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any]) -> Task:
        """The task stored in a checkpoint (dictionaries and tokenizer; no data)."""
        ...

    def checkpoint_data(self) -> dict[str, Any]:
        """What :meth:`from_checkpoint` needs (``dictionaries`` by name, ``tokenizer``)."""
        ...

    def build_model(
        self, arch: str, *layers: Mapping[str, Any] | None
    ) -> tuple[torch.nn.Module, Any]:
        """A fresh model of ``arch`` (config layers applied in order) and its config."""
        ...

    def model_from_checkpoint(self, state: Mapping[str, Any]) -> torch.nn.Module:
        """The trained model of a checkpoint, weights loaded."""
        ...

    # --- training -------------------------------------------------------------------------
    def train_iterator(
        self,
        cfg: TrainConfig,
        model: torch.nn.Module,
        device: torch.device,
        generator: torch.Generator,
        resume: Mapping[str, Any] | None,
        *,
        shard: Shard,
    ) -> TrainIterator:
        """Worker ``shard``'s batches of this epoch of ``train`` (continuing ``resume``, a
        ``state_dict``); every worker must get as many."""
        ...

    def check_split(self, split: str, cfg: TrainConfig, *, train: bool, world: int) -> None:
        """Before training: ``split`` exists and its first batch builds (PreflightError)."""
        ...

    def check_options(self, cfg: TrainConfig) -> None:
        """Before training: task-specific options are valid."""
        ...

    def valid_metrics(self, cfg: TrainConfig) -> set[str]:
        """The metrics :meth:`evaluate` reports with these options."""
        ...

    def loss(
        self,
        model: torch.nn.Module,
        batch: Any,
        itr: Any,
        criterion: Criterion | None = None,
    ) -> LossResult:
        """Summed loss of ``batch`` (``criterion``, default plain NLL), its tokens and its
        sequences; ``itr`` is the iterator that made the batch (it may carry state)."""
        ...

    def evaluate(
        self,
        model: torch.nn.Module,
        split: str,
        cfg: TrainConfig,
        device: torch.device,
        *,
        shard: Shard = (0, 1),
    ) -> dict[str, float]:
        """Metrics of ``split``; a task may score only ``shard``'s part and all-reduce, or
        ignore ``shard`` and score all of it on every worker."""
        ...


TASK_CLASS_ATTRIBUTES = ("name", "inference", "train_options")
TASK_CLASS_METHODS = (
    "check_preprocess", "streams", "input_files", "dictionary_specs",
    "from_data_dir", "from_checkpoint",
)  # fmt: skip
TASK_METHODS = (
    "checkpoint_data", "build_model", "model_from_checkpoint", "train_iterator", "check_split",
    "check_options", "valid_metrics", "loss", "evaluate",
)  # fmt: skip
SHARDED_METHODS = ("train_iterator", "evaluate")  # must take shard=


def _takes(method: Any, parameter: str) -> bool:
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return True
    return any(p.name == parameter or p.kind is p.VAR_KEYWORD for p in params)


def missing_members(cls: type) -> list[str]:
    """What ``cls`` lacks of the :class:`Task` contract, as readable phrases (empty: none)."""
    missing = [f"class attribute {a!r}" for a in TASK_CLASS_ATTRIBUTES if not hasattr(cls, a)]
    for m in TASK_CLASS_METHODS + TASK_METHODS:
        if not callable(getattr(cls, m, None)):
            missing.append(f"method {m}()")
    for m in SHARDED_METHODS:
        if callable(getattr(cls, m, None)) and not _takes(getattr(cls, m), "shard"):
            missing.append(f"the shard= parameter of {m}()")
    return missing


def check_task_class(name: str, cls: type) -> None:
    """Raise a one-line RnnkitError unless ``cls`` fulfils :class:`Task` under ``name``."""
    where = f"task {name!r} ({getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)})"
    missing = missing_members(cls)
    if missing:
        lacks = ", ".join(missing)
        raise RnnkitError(f"{where} does not implement the Task contract: lacks {lacks}")


class TaskRegistry(Registry[type]):
    """The task registry: like any :class:`~rnnkit.registry.Registry`, but a class is checked
    against the :class:`Task` contract when it registers."""

    def add(self, name: str, obj: type, description: str | None = None) -> None:
        check_task_class(name, obj)
        super().add(name, obj, description)


def tokenizer_name(meta: Mapping[str, Any], default: str = "space") -> str:
    """The tokenizer named by a ``preprocess.json`` (a name, or a dict with ``name``)."""
    tok = meta.get("tokenizer", default)
    return tok.get("name", default) if isinstance(tok, Mapping) else str(tok)


def reject_pair_options(cfg: PreprocessConfig) -> None:
    """Source/target languages and a joined dictionary belong to translation only."""
    if cfg.source_lang or cfg.target_lang:
        raise RnnkitError("-s/--source-lang and -t/--target-lang are for --task translation")
    if cfg.joined_dictionary:
        raise RnnkitError("--joined-dictionary is for --task translation")


class TaskBase:
    """Optional defaults for a :class:`Task`: no inference object or task options yet, one
    raw file per stream at ``PREFIX.STREAM``, no extra checks. Subclasses set ``name`` and
    implement the rest."""

    name: ClassVar[str] = ""
    inference: ClassVar[type | None] = None
    train_options: ClassVar[type | None] = None
    # preprocess's default for empty train lines: kept (a lone </s>) or dropped (--keep-empty)
    keep_empty_lines: ClassVar[bool] = False

    @classmethod
    def check_preprocess(cls, cfg: PreprocessConfig) -> None:
        reject_pair_options(cfg)

    @classmethod
    def input_files(cls, prefix: str, streams: Sequence[Stream]) -> tuple[Path, ...]:
        if len(streams) == 1:
            return (Path(prefix),)
        return tuple(Path(f"{prefix}.{s.name}") for s in streams)

    @classmethod
    def dictionary_specs(
        cls, cfg: PreprocessConfig, streams: Sequence[Stream]
    ) -> list[DictionarySpec]:
        first = DictionarySpec(cfg.srcdict, cfg.threshold, cfg.nwords)
        return [first] + [DictionarySpec(None) for _ in streams[1:]]

    def check_options(self, cfg: TrainConfig) -> None:
        """No task-specific options to check."""

    def check_split(self, split: str, cfg: TrainConfig, *, train: bool, world: int = 1) -> None:
        """No checks before training beyond the loop's own."""
