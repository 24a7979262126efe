"""Language modelling: stateful truncated BPTT over a token stream, perplexity, line scoring.

Training data is one contiguous stream of token ids (every line followed by ``</s>``), cut into
``B`` parallel rows; each update sees the next ``bptt`` columns, and the hidden state is carried
from one window to the next, detached (Zaremba et al. 2014; Merity et al. 2017 for the
randomized window length). The rows are read from the split's memory map one window at a time
(:class:`~rnnkit.data.streams.TokenRows`), so memory does not grow with the corpus. Position
and carried state are part of the iterator's state, so a resumed run continues mid-epoch
exactly where it stopped. With several workers each takes a contiguous block of the B rows (see
:meth:`LanguageModelingTask.train_iterator`). Raw lines are scored one by one from a fresh
state (:meth:`LanguageModelingTask.score_lines`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from rnnkit.config import resolve
from rnnkit.data.binarized import IndexedDataset, data_paths
from rnnkit.data.corpus import Stream
from rnnkit.data.sentences import pad_rows
from rnnkit.data.streams import TokenRows
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import MODEL_REGISTRY, resolve_arch
from rnnkit.tasks import TASK_REGISTRY
from rnnkit.tasks.base import Shard, TaskBase, reject_pair_options, tokenizer_name
from rnnkit.tasks.inference.lm import LanguageModel
from rnnkit.tasks.lines import LineLimit, token_batches
from rnnkit.tasks.lm_data import StreamIterator, Window, batchify, row_block
from rnnkit.tokenizers import Tokenizer, load_tokenizer, tokenizer_from_state
from rnnkit.training import distributed, preflight
from rnnkit.training.checkpoint import load_weights
from rnnkit.training.config import LmTrainOptions
from rnnkit.training.criteria import Criterion

if TYPE_CHECKING:
    from rnnkit.data.preprocess import PreprocessConfig
    from rnnkit.training.config import TrainConfig

__all__ = ["IN_RAM_ENV", "LanguageModelingTask", "StreamIterator", "Window", "batchify"]

LOGITS_PER_WINDOW = 1 << 24  # (B, W, V) logits of one window when scoring lines (64 MB in fp32)
# Set (to anything) by benchmarks/scale.py only: load each split whole into an int64 tensor, as
# rnnkit did before reading from the memory map, for measuring the two side by side.
IN_RAM_ENV = "RNNKIT_BENCH_LM_IN_RAM"


def _my_carry(carry: Mapping[str, Any], batch: int, shard: Shard) -> dict[str, Any]:
    """Worker ``shard``'s rows of the state carried for all ``batch`` streams, saved (L, B, H)."""
    saved = next((v.size(1) for v in carry.values() if v is not None), batch)
    if saved != batch:
        raise RnnkitError(
            f"the checkpoint carries the state of {saved} streams, not --batch-size "
            f"{batch}; resume with --batch-size {saved}, or --reset"
        )
    rows = row_block(batch, shard)
    return {k: None if v is None else v[:, rows] for k, v in carry.items()}


@TASK_REGISTRY.register("lm")
class LanguageModelingTask(TaskBase):
    """Word- or character-level language modelling over binarized ``{split}.bin/.idx`` data."""

    name = "lm"
    inference = LanguageModel
    train_options = LmTrainOptions
    keep_empty_lines = True  # as fairseq: an empty line is a lone </s> (a paragraph break)

    # --- preprocess: one text file a split, ``dict.txt`` and ``{split}.bin/.idx`` ----------
    @classmethod
    def check_preprocess(cls, cfg: PreprocessConfig) -> None:
        reject_pair_options(cfg)
        if cfg.tgtdict:
            raise RnnkitError(
                f"--tgtdict is for translation and tagging; {cls.name} reuses --srcdict"
            )

    @classmethod
    def streams(cls, cfg: PreprocessConfig) -> tuple[Stream, ...]:
        return (Stream("text", "text", "", "dict.txt", True),)

    def __init__(self, dictionary: Dictionary, tokenizer: Tokenizer, data_dir: str | None = None):
        self.dictionary, self.tokenizer, self.data_dir = dictionary, tokenizer, data_dir

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_data_dir(
        cls, data_dir: str | os.PathLike, meta: Mapping[str, Any]
    ) -> LanguageModelingTask:
        d = Dictionary.load(Path(data_dir) / "dict.txt")
        return cls(d, load_tokenizer(tokenizer_name(meta), data_dir), os.fspath(data_dir))

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any]) -> LanguageModelingTask:
        d = Dictionary.from_lines(state["dictionaries"]["main"], source="checkpoint dictionary")
        return cls(d, tokenizer_from_state(state["tokenizer"]))

    def checkpoint_data(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild this task without the data directory."""
        return {
            "dictionaries": {"main": self.dictionary.to_lines()},
            "tokenizer": self.tokenizer.state(),
        }

    def build_model(
        self, arch: str, *layers: Mapping[str, Any] | None
    ) -> tuple[torch.nn.Module, Any]:
        cls, cfg = resolve_arch(arch, *layers)
        if cls.task_name != self.name:
            raise RnnkitError(
                f"--arch {arch} is a {cls.task_name!r} model; this data is for task {self.name!r}"
            )
        return cls.build(cfg, self.dictionary), cfg

    def model_from_checkpoint(self, state: Mapping[str, Any]) -> torch.nn.Module:
        cls = MODEL_REGISTRY.get(state["model"])
        model = cls.build(resolve(cls.config_class, state["model_config"]), self.dictionary)
        load_weights(model, state["model_state"])
        return model

    # --- data ------------------------------------------------------------------------------
    def dataset(self, split: str) -> IndexedDataset:
        """The memory-mapped binarized ``split``."""
        if self.data_dir is None:
            raise RnnkitError("this task was loaded from a checkpoint and has no data directory")
        return IndexedDataset(Path(self.data_dir) / split)

    def load_stream(self, split: str) -> torch.Tensor:
        """All tokens of ``split`` as one int64 tensor (N,), in memory: for small data and
        tools. Training and evaluation read through :meth:`rows` instead."""
        return torch.from_numpy(self.dataset(split).stream().astype("int64"))

    def rows(self, split: str, batch_size: int) -> TokenRows:
        """``split`` cut into ``batch_size`` parallel streams, read from its memory map."""
        if os.environ.get(IN_RAM_ENV):
            return TokenRows.cut(self.load_stream(split), batch_size)
        return TokenRows.cut(self.dataset(split).stream(), batch_size)

    def iterator(self, split: str, batch_size: int, bptt: int, **kwargs: Any) -> StreamIterator:
        return StreamIterator(self.rows(split, batch_size), bptt, **kwargs)

    def train_iterator(
        self,
        cfg: TrainConfig,
        model: torch.nn.Module,
        device: torch.device,
        generator: torch.Generator,
        resume: Mapping[str, Any] | None = None,
        *,
        shard: Shard = (0, 1),
    ) -> StreamIterator:
        """The epoch's windows over ``train`` for worker ``shard = (rank, world)``, continuing
        ``resume`` (a ``state_dict``) if given.

        The ``--batch-size`` B streams are one cut of the whole token stream; worker ``rank``
        takes rows ``rank*B/world`` to ``(rank+1)*B/world - 1`` (B must be a multiple of
        ``world``). Every worker walks the same windows (the same count, and random lengths
        from ``generator``, which all seed alike) over its own rows, so ``world`` workers × B /
        ``world`` rows make the update of one worker × B rows. ``resume`` holds the position and
        the carried state of all B rows, so a run resumes exactly under any world size that
        divides B.
        """
        batch, world = cfg.batch_size, shard[1]
        if batch % world:
            raise RnnkitError(
                f"--batch-size {batch} (lm: parallel streams, shared by all workers) is not a "
                f"multiple of the {world} workers"
            )
        resume = resume or {}
        rows = self.rows("train", batch).block(row_block(batch, shard))
        itr = StreamIterator(rows, cfg.bptt, random_bptt=cfg.random_bptt, generator=generator,
                             position=resume.get("position", 0), sharded=world > 1)  # fmt: skip
        carry = resume.get("carry")
        if carry is not None:
            itr.load_carry(_my_carry(carry, batch, shard), type(model.init_state(1)), device)
        return itr

    # --- checks before training (rnnkit.training.preflight) --------------------------------
    def check_split(self, split: str, cfg: TrainConfig, *, train: bool, world: int = 1) -> None:
        """``split`` exists, has enough tokens for its parallel streams, and its first window
        builds; the streams of ``train`` divide among ``world`` workers. Reads the index and
        one window's tokens only."""
        assert self.data_dir is not None
        prefix = Path(self.data_dir) / split
        preflight.require_split(self.data_dir, split, data_paths(prefix), ".idx", train)
        ds = IndexedDataset(prefix)
        preflight.require_nonempty(self.data_dir, split, ds.num_tokens, "tokens", train)
        rows = cfg.batch_size if train else cfg.valid_batch_size or cfg.batch_size
        option = "--batch-size" if train or not cfg.valid_batch_size else "--valid-batch-size"
        if rows < 1:
            raise preflight.PreflightError(f"{option} {rows}: lm needs at least 1 stream")
        if ds.num_tokens // rows < 2:
            most = f"at most {ds.num_tokens // 2}" if ds.num_tokens > 1 else "too short a split"
            also = "" if option != "--batch-size" or train else "; --valid-batch-size sets its own"
            raise preflight.PreflightError(
                f"{option} {rows}: the {split!r} split in {self.data_dir} has {ds.num_tokens} "
                f"tokens, too few for {rows} parallel streams of 2 or more ({most}{also})"
            )
        # The row split is this class's train_iterator's; a subclass may batch otherwise.
        streams = type(self).train_iterator is LanguageModelingTask.train_iterator
        if train and streams and rows % world:
            raise preflight.PreflightError(
                f"--batch-size {rows} (lm: parallel streams, shared by all workers) is not a "
                f"multiple of the {world} workers"
            )
        next(iter(StreamIterator(TokenRows.cut(ds.stream(), rows), cfg.bptt)))  # one window

    def valid_metrics(self, cfg: TrainConfig) -> set[str]:
        """The metrics :meth:`evaluate` reports."""
        return {"loss", "ppl", "bpc", "tokens"}

    # --- loss ------------------------------------------------------------------------------
    def loss(
        self,
        model: torch.nn.Module,
        window: Window,
        itr: StreamIterator,
        criterion: Criterion | None = None,
    ) -> tuple[torch.Tensor, int, int]:
        """Summed loss of one window (``criterion``, default plain NLL), its target tokens and
        its sequences (the B streams).

        Runs the model from the iterator's carried state and stores the new state, detached, so
        the next window continues the stream without backpropagating into this one.
        """
        device = next(model.parameters()).device
        window = window.to(device)
        logits, state = model(window.inputs, itr.carry)  # (B, L, V)
        itr.carry = state.detach()
        flat_logits, flat_targets = logits.reshape(-1, logits.size(-1)), window.targets.reshape(-1)
        if criterion is None:
            loss = F.cross_entropy(flat_logits, flat_targets, reduction="sum")
        else:
            loss = criterion(flat_logits, flat_targets)
        return loss, window.targets.numel(), window.targets.size(0)

    @torch.inference_mode()
    def evaluate(
        self,
        model: torch.nn.Module,
        split: str,
        cfg: TrainConfig,
        device: torch.device,
        *,
        shard: Shard = (0, 1),
    ) -> dict[str, float]:
        """Mean negative log-likelihood per token (nats), perplexity and bits per token, over
        ``cfg.valid_batch_size`` (or ``batch_size``) streams in ``cfg.bptt`` windows.

        Worker ``shard = (rank, world)`` scores its block of the streams and the sums are
        all-reduced, so every worker returns the numbers of the whole split.
        """
        model.eval()
        rows = self.rows(split, cfg.valid_batch_size or cfg.batch_size)
        rows = rows.block(row_block(rows.num_rows, shard))
        total, count = 0.0, 0
        if rows.num_rows > 0:
            itr = StreamIterator(rows, cfg.bptt)
            for w in itr:
                loss, n, _ = self.loss(model, w, itr)
                total, count = total + loss.item(), count + n
        total, count = distributed.all_reduce_sum([total, count])
        nll = total / max(count, 1)
        return {
            "loss": nll,
            "ppl": math.exp(min(nll, 100.0)),
            "bpc": nll / math.log(2),
            "tokens": int(count),
        }

    @torch.inference_mode()
    def score_lines(
        self,
        model: torch.nn.Module,
        lines: list[str],
        device: torch.device,
        batch_size: int = 64,
        limit: LineLimit | None = None,
        token_scores: bool = False,
    ) -> list[dict[str, Any] | None]:
        """Log-probability of each raw line (its tokens then ``</s>``, from a fresh ``</s>`` state).

        A line of more than ``limit.max_positions`` ids (``</s>`` included) is cut to its first
        ones, scored without the ``</s>`` (the log-probability of that prefix), or skipped
        (``None``) with ``limit.skip_invalid``, with a warning naming it
        (:class:`~rnnkit.tasks.lines.LineLimit`). Lines are grouped by length
        (:func:`~rnnkit.tasks.lines.token_batches`) and right-padded (a left-to-right model
        never looks at the padding after a line). Returns one dict per line, in input order:
        tokens, logprob (nats), ppl; with ``token_scores`` also token_logprobs (one per id).
        """
        model.eval()
        limit = limit or LineLimit()
        d = self.dictionary
        encoded = [limit.fit(d.encode(self.tokenizer.encode(line), append_eos=True), n)
                   for n, line in enumerate(lines)]  # fmt: skip
        kept = [i for i, ids in enumerate(encoded) if ids is not None]
        results: list[dict[str, Any] | None] = [None] * len(lines)
        for chunk in token_batches([len(encoded[i]) for i in kept], batch_size):
            rows = [encoded[kept[j]] for j in chunk]
            per_token = self.token_logprobs(model, rows, device)  # (B, T)
            for j, ids, lps in zip(chunk, rows, per_token, strict=True):
                lp = float(lps.sum())
                results[kept[j]] = {
                    "tokens": len(ids),
                    "logprob": lp,
                    "ppl": math.exp(-lp / len(ids)),
                }
                if token_scores:
                    results[kept[j]]["token_logprobs"] = lps[: len(ids)].tolist()
        return results

    def logprobs(
        self, model: torch.nn.Module, rows: list[list[int]], device: torch.device
    ) -> list[float]:
        """Summed log-probability (nats) of each id sequence, each from a fresh ``</s>`` state."""
        return self.token_logprobs(model, rows, device).sum(dim=1).tolist()

    @torch.inference_mode()
    def token_logprobs(
        self, model: torch.nn.Module, rows: list[list[int]], device: torch.device
    ) -> torch.Tensor:
        """(B, T) log-probability (nats) of every id of each sequence (0 past its end), each
        from a fresh ``</s>`` state.

        The padded batch runs through the model in windows of columns with the hidden state
        carried across, so at most about :data:`LOGITS_PER_WINDOW` logits are in memory however
        long the rows and large the vocabulary are.
        """
        d = self.dictionary
        targets = pad_rows(rows, d.pad_index)  # (B, T)
        inputs = torch.cat([torch.full((len(rows), 1), d.eos_index), targets[:, :-1]], dim=1)
        width = max(1, LOGITS_PER_WINDOW // (len(rows) * len(d)))
        state, nll = None, []
        for start in range(0, targets.size(1), width):
            logits, state = model(inputs[:, start : start + width].to(device), state)  # (B, W, V)
            nll.append(F.cross_entropy(
                logits.transpose(1, 2).float(), targets[:, start : start + width].to(device),
                ignore_index=d.pad_index, reduction="none",
            ))  # (B, W)  # fmt: skip
        return -torch.cat(nll, dim=1).cpu()
