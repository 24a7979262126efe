"""Language modelling: stateful truncated BPTT over a token stream, perplexity, line scoring.

Training data is one contiguous stream of token ids (every line followed by ``</s>``), cut into
``B`` parallel rows; each update sees the next ``bptt`` columns, and the hidden state is carried
from one window to the next, detached (Zaremba et al. 2014; Merity et al. 2017 for the
randomized window length). Position and carried state are part of the iterator's state, so a
resumed run continues mid-epoch exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.config import resolve
from rnnkit.data.binarized import IndexedDataset
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import MODEL_REGISTRY, resolve_arch
from rnnkit.tasks import TASK_REGISTRY
from rnnkit.tokenizers import Tokenizer, load_tokenizer, tokenizer_from_state
from rnnkit.training.criteria import Criterion


def batchify(stream: torch.Tensor, rows: int) -> torch.Tensor:
    """Cut a 1-D stream into ``rows`` contiguous rows, dropping the remainder: (N,) → (B, N//B)."""
    n = stream.numel() // rows
    if n < 2:
        raise RnnkitError(f"{stream.numel()} tokens are too few for {rows} parallel streams")
    return stream[: n * rows].view(rows, n)


@dataclass
class Window:
    """One BPTT window: inputs and next-token targets, both (B, L); ``scale`` multiplies the lr."""

    inputs: torch.Tensor
    targets: torch.Tensor
    scale: float = 1.0

    def to(self, device: torch.device) -> Window:
        return Window(self.inputs.to(device), self.targets.to(device), self.scale)


class StreamIterator:
    """Walks BPTT windows over (B, N) rows; keeps the carried hidden state and its position."""

    def __init__(
        self,
        rows: torch.Tensor,
        bptt: int,
        random_bptt: bool = False,
        generator: torch.Generator | None = None,
        position: int = 0,
    ) -> None:
        self.rows, self.bptt, self.random_bptt = rows, bptt, random_bptt
        self.generator = generator
        self.position = position
        self.carry: Any = None  # the model's hidden state after the last window

    def __len__(self) -> int:
        """Number of windows in a full pass at the nominal ``bptt``."""
        return math.ceil((self.rows.size(1) - 1) / self.bptt)

    @property
    def batches_done(self) -> int:
        """Windows already walked this epoch (at the nominal ``bptt``), for progress bars."""
        return round(self.position / self.bptt)

    def _length(self) -> int:
        if not self.random_bptt:
            return self.bptt
        g = self.generator
        base = self.bptt if torch.rand(1, generator=g).item() < 0.95 else self.bptt / 2
        return max(5, int(torch.normal(base, 5.0, (1,), generator=g).item()))

    def __iter__(self) -> Iterator[Window]:
        last = self.rows.size(1) - 1
        while self.position < last:
            length = min(self._length(), last - self.position)
            i = self.position
            self.position += length
            yield Window(
                self.rows[:, i : i + length],
                self.rows[:, i + 1 : i + 1 + length],
                length / self.bptt if self.random_bptt else 1.0,
            )

    def state_dict(self) -> dict[str, Any]:
        """Position and carried state as plain data (the state's tensor fields by name)."""
        carry = None
        if self.carry is not None:
            carry = {f.name: getattr(self.carry, f.name) for f in dataclasses.fields(self.carry)}
        return {"position": self.position, "carry": carry}

    def load_carry(self, carry: dict[str, Any], state_type: type, device: torch.device) -> None:
        """Restore the carried state saved by :meth:`state_dict`."""
        self.carry = state_type(
            **{k: v.to(device) if v is not None else None for k, v in carry.items()}
        )


@TASK_REGISTRY.register("lm")
class LanguageModelingTask:
    """Word- or character-level language modelling over binarized ``{split}.bin/.idx`` data."""

    name = "lm"

    def __init__(self, dictionary: Dictionary, tokenizer: Tokenizer, data_dir: str | None = None):
        self.dictionary, self.tokenizer, self.data_dir = dictionary, tokenizer, data_dir

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_data_dir(
        cls, data_dir: str | os.PathLike, meta: Mapping[str, Any]
    ) -> LanguageModelingTask:
        tok = meta.get("tokenizer", "space")
        name = tok.get("name", "space") if isinstance(tok, Mapping) else str(tok)
        d = Dictionary.load(Path(data_dir) / "dict.txt")
        return cls(d, load_tokenizer(name, data_dir), os.fspath(data_dir))

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
        model.load_state_dict(state["model_state"])
        return model

    # --- data ------------------------------------------------------------------------------
    def load_stream(self, split: str) -> torch.Tensor:
        """All tokens of ``split`` as one int64 tensor (N,)."""
        if self.data_dir is None:
            raise RnnkitError("this task was loaded from a checkpoint and has no data directory")
        ds = IndexedDataset(Path(self.data_dir) / split)
        return torch.from_numpy(ds.stream().astype("int64"))

    def iterator(self, split: str, batch_size: int, bptt: int, **kwargs: Any) -> StreamIterator:
        return StreamIterator(batchify(self.load_stream(split), batch_size), bptt, **kwargs)

    def train_iterator(
        self,
        cfg: Any,
        model: torch.nn.Module,
        device: torch.device,
        generator: torch.Generator,
        resume: Mapping[str, Any] | None = None,
    ) -> StreamIterator:
        """The epoch's windows over ``train``, continuing ``resume`` (a ``state_dict``) if given."""
        resume = resume or {}
        itr = self.iterator("train", cfg.batch_size, cfg.bptt, random_bptt=cfg.random_bptt,
                            generator=generator, position=resume.get("position", 0))  # fmt: skip
        if resume.get("carry") is not None:
            itr.load_carry(resume["carry"], type(model.init_state(1)), device)
        return itr

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
        self, model: torch.nn.Module, split: str, cfg: Any, device: torch.device
    ) -> dict[str, float]:
        """Mean negative log-likelihood per token (nats), perplexity and bits per token, over
        ``cfg.valid_batch_size`` (or ``batch_size``) streams in ``cfg.bptt`` windows."""
        model.eval()
        itr = self.iterator(split, cfg.valid_batch_size or cfg.batch_size, cfg.bptt)
        total, count = 0.0, 0
        for w in itr:
            loss, n, _ = self.loss(model, w, itr)
            total, count = total + loss.item(), count + n
        nll = total / max(count, 1)
        return {
            "loss": nll,
            "ppl": math.exp(min(nll, 100.0)),
            "bpc": nll / math.log(2),
            "tokens": count,
        }

    @torch.inference_mode()
    def score_lines(
        self, model: torch.nn.Module, lines: list[str], device: torch.device, batch_size: int = 64
    ) -> list[dict[str, Any]]:
        """Log-probability of each raw line (its tokens then ``</s>``, from a fresh ``</s>`` state).

        Lines are scored ``batch_size`` at a time, grouped by length and right-padded (a
        left-to-right model never looks at the padding after a line). Returns one dict per line,
        in input order: tokens, logprob (nats), ppl.
        """
        model.eval()
        d = self.dictionary
        encoded = [d.encode(self.tokenizer.encode(line), append_eos=True) for line in lines]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[dict[str, Any]] = [{}] * len(lines)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            targets = torch.full((len(chunk), max(len(encoded[i]) for i in chunk)), d.pad_index)
            for row, i in enumerate(chunk):
                targets[row, : len(encoded[i])] = torch.tensor(encoded[i])
            inputs = torch.cat([torch.full((len(chunk), 1), d.eos_index), targets[:, :-1]], dim=1)
            logits, _ = model(inputs.to(device), None)  # (B, T, V)
            nll = F.cross_entropy(
                logits.transpose(1, 2), targets.to(device), ignore_index=d.pad_index,
                reduction="none",
            ).sum(dim=1)  # (B,)  # fmt: skip
            for row, i in enumerate(chunk):
                lp, n = -nll[row].item(), len(encoded[i])
                results[i] = {"tokens": n, "logprob": lp, "ppl": math.exp(-lp / n)}
        return results
