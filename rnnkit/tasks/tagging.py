"""Sequence tagging (slots, with an optional sentence label) and sentence classification.

Data is what ``rnnkit preprocess --task tagging|classification`` writes: ``{split}.in`` (tokens,
no ``</s>``), ``{split}.tags`` (one tag per token, tagging only) and ``{split}.label`` (one label
per sentence, where the folder had a ``label`` file). Training batches group sentences of
similar length (:mod:`rnnkit.data.buckets`) in an order drawn from one seed per epoch, and
resume mid-epoch exactly. Evaluation reports the objective, CoNLL span F1 (:mod:`rnnkit.scoring`),
token accuracy and label accuracy. Decoding never outputs a special symbol, so a tag or label
unseen in training (``<unk>`` in the data) is scored as a miss and never predicted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import scoring
from rnnkit.config import resolve
from rnnkit.data import buckets
from rnnkit.data.binarized import data_paths
from rnnkit.data.sentences import SentenceBatch, SentenceData
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import MODEL_REGISTRY, resolve_arch
from rnnkit.tasks import TASK_REGISTRY
from rnnkit.tasks.lines import LineLimit, token_batches
from rnnkit.tokenizers import Tokenizer, load_tokenizer, tokenizer_from_state
from rnnkit.training import preflight
from rnnkit.training.checkpoint import load_weights
from rnnkit.training.criteria import Criterion, cross_entropy


def predictable(d: Dictionary) -> Tensor:
    """(V,) bool: the symbols decoding may output (not a special or padding ``madeupword``)."""
    return torch.tensor(
        [i >= d.nspecial and not s.startswith("madeupword") for i, s in enumerate(d.symbols)]
    )


def model_config(model: torch.nn.Module) -> Any:
    """The config of a model, also through a DistributedDataParallel (``.module``) wrapper."""
    return getattr(model, "module", model).cfg


def decode(logits: Tensor, allowed: Tensor) -> Tensor:
    """Arg-max over ``allowed`` symbols: logits (..., V) → ids (...)."""
    return logits.masked_fill(~allowed.to(logits.device), float("-inf")).argmax(-1)


class SentenceTask:
    """What tagging and classification share: dictionaries, data, batches, checkpoints."""

    name = ""
    has_tags = True

    def __init__(
        self,
        dictionary: Dictionary,
        tags: Dictionary | None,
        labels: Dictionary | None,
        tokenizer: Tokenizer,
        data_dir: str | None = None,
    ) -> None:
        self.dictionary, self.tag_dictionary, self.label_dictionary = dictionary, tags, labels
        self.tokenizer, self.data_dir = tokenizer, data_dir
        self._splits: dict[str, SentenceData] = {}
        # What decoding may output: never a special symbol, so never an unseen tag or label.
        self.tag_mask = predictable(tags) if tags is not None else None
        self.label_mask = predictable(labels) if labels is not None else None

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_data_dir(cls, data_dir: str | os.PathLike, meta: Mapping[str, Any]) -> SentenceTask:
        d = Path(data_dir)
        tok = meta.get("tokenizer", "space")
        name = tok.get("name", "space") if isinstance(tok, Mapping) else str(tok)
        tags = Dictionary.load(d / "dict.tags.txt") if cls.has_tags else None
        label_path = d / "dict.label.txt"
        labels = Dictionary.load(label_path) if label_path.is_file() or not cls.has_tags else None
        return cls(Dictionary.load(d / "dict.in.txt"), tags, labels,
                   load_tokenizer(name, data_dir), os.fspath(data_dir))  # fmt: skip

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any]) -> SentenceTask:
        dicts = {
            k: Dictionary.from_lines(v, source=f"checkpoint dictionary {k!r}")
            for k, v in state["dictionaries"].items()
        }
        return cls(dicts["in"], dicts.get("tags"), dicts.get("label"),
                   tokenizer_from_state(state["tokenizer"]))  # fmt: skip

    def checkpoint_data(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild this task without the data directory."""
        named = {"in": self.dictionary, "tags": self.tag_dictionary, "label": self.label_dictionary}
        return {
            "dictionaries": {k: d.to_lines() for k, d in named.items() if d is not None},
            "tokenizer": self.tokenizer.state(),
        }

    def build_model(
        self, arch: str, *layers: Mapping[str, Any] | None
    ) -> tuple[torch.nn.Module, Any]:
        cls, cfg = resolve_arch(arch, *layers, task=self.name)
        return self.build(cls, cfg), cfg

    def build(self, cls: type, cfg: Any) -> torch.nn.Module:
        """A model of class ``cls`` for this task's dictionaries."""
        raise NotImplementedError

    def model_from_checkpoint(self, state: Mapping[str, Any]) -> torch.nn.Module:
        cls = MODEL_REGISTRY.get(state["model"])
        model = self.build(cls, resolve(cls.config_class, state["model_config"]))
        load_weights(model, state["model_state"])
        return model

    # --- data ------------------------------------------------------------------------------
    def data(self, split: str) -> SentenceData:
        """The binarized ``split`` (opened once, memory-mapped)."""
        if self.data_dir is None:
            raise RnnkitError("this task was loaded from a checkpoint and has no data directory")
        if split not in self._splits:
            self._splits[split] = SentenceData.load(
                Path(self.data_dir) / split, self.dictionary.pad_index,
                self.has_tags, self.label_dictionary is not None,
            )  # fmt: skip
        return self._splits[split]

    def train_iterator(
        self,
        cfg: Any,
        model: torch.nn.Module,
        device: torch.device,
        generator: torch.Generator,
        resume: Mapping[str, Any] | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> buckets.BatchIterator:
        """This epoch's batches of ``train`` (a fresh seed from ``generator`` unless resuming
        ``resume``, a ``state_dict``): worker ``shard = (rank, world)``'s share of one list,
        from the resumed global position on, under any world size (``BatchIterator.for_epoch``)."""
        data = self.data("train")
        return buckets.BatchIterator.for_epoch(
            lambda seed: buckets.batch_by_size(data.sizes, cfg.batch_size, cfg.max_tokens, seed),
            data.collate, generator, resume, shard,
        )  # fmt: skip

    def eval_batches(self, split: str, cfg: Any) -> Iterator[SentenceBatch]:
        """Every sentence of ``split`` once, in length-sorted batches of the validation size."""
        data, size = self.data(split), cfg.valid_batch_size or cfg.batch_size
        for indices in buckets.batch_by_size(data.sizes, size, cfg.max_tokens):
            yield data.collate(indices.tolist())

    def check_split(self, split: str, cfg: Any, *, train: bool, world: int = 1) -> None:
        """Before training (:mod:`rnnkit.training.preflight`): ``split`` has its files and
        sentences that fit ``--max-tokens``, enough for ``world`` workers, and its first batch
        builds. Reads the indices and one batch only."""
        assert self.data_dir is not None
        streams = ["in", *(["tags"] if self.has_tags else [])]
        streams += ["label"] if self.label_dictionary is not None else []
        prefix = Path(self.data_dir) / split
        files = [p for s in streams for p in data_paths(f"{prefix}.{s}")]
        preflight.require_split(self.data_dir, split, files, ".in.idx", train)
        data = self.data(split)
        preflight.require_nonempty(self.data_dir, split, len(data.sizes), "sentences", train)
        if train:
            preflight.check_workers(self.data_dir, split, len(data.sizes), world)
        ids = np.arange(len(data.sizes))
        preflight.check_max_tokens(self.data_dir, split, data.sizes, ids, cfg.max_tokens)
        size = cfg.batch_size if train else cfg.valid_batch_size or cfg.batch_size
        data.collate(preflight.first_batch(data.sizes, size, cfg.max_tokens))

    # --- inference -------------------------------------------------------------------------
    def run_lines(
        self,
        model: torch.nn.Module,
        lines: list[str],
        device: torch.device,
        size: int,
        limit: LineLimit | None = None,
    ) -> Iterator[tuple[list[tuple[int, list[str]]], Any]]:
        """The model's output on raw lines, grouped by length in batches of at most ``size``
        lines (:func:`~rnnkit.tasks.lines.token_batches`): per batch, ``(line index, tokens)``
        of each row and the output. A line over ``limit.max_positions`` tokens is truncated, or
        left out with ``limit.skip_invalid`` (:class:`~rnnkit.tasks.lines.LineLimit`)."""
        model.eval()
        limit = limit or LineLimit()
        fitted = [limit.fit(self.tokenizer.encode(line), n) for n, line in enumerate(lines)]
        kept = [(i, t) for i, t in enumerate(fitted) if t is not None]
        data = SentenceData([self.dictionary.encode(t, append_eos=False) for _, t in kept],
                            self.dictionary.pad_index)  # fmt: skip
        for indices in token_batches(data.sizes, size):
            batch = data.collate(indices).to(device)
            yield [kept[j] for j in indices], model(batch.tokens, batch.lengths)

    def label_result(self, logits: Tensor) -> dict[str, Any]:
        """``{"label": str, "prob": float}`` from one sentence's label logits (C,)."""
        assert self.label_dictionary is not None and self.label_mask is not None
        i = int(decode(logits, self.label_mask))
        return {"label": self.label_dictionary[i], "prob": logits.softmax(-1)[i].item()}


@dataclass
class Tally:
    """Running sums of one evaluation pass."""

    tag_nll: float = 0.0
    label_nll: float = 0.0
    tokens: int = 0
    sentences: int = 0
    labelled: int = 0  # sentences with a gold label
    label_right: int = 0
    sent_right: int = 0
    gold: list[list[str]] = field(default_factory=list)
    pred: list[list[str]] = field(default_factory=list)


@TASK_REGISTRY.register("tagging")
class TaggingTask(SentenceTask):
    """One tag per token (BIO slots), plus a sentence label when the model has a label head."""

    name = "tagging"

    def build(self, cls: type, cfg: Any) -> torch.nn.Module:
        assert self.tag_dictionary is not None
        return cls.build(cfg, self.dictionary, self.tag_dictionary, self.label_dictionary)

    def losses(
        self, model: torch.nn.Module, batch: SentenceBatch, criterion: Criterion | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """Summed tag loss, summed label loss (None without a label head), tag logits
        (B, T, K) and label logits (B, C) or None."""
        pad = self.dictionary.pad_index
        crit = criterion or cross_entropy(ignore_index=pad)
        tag_logits, label_logits = model(batch.tokens, batch.lengths)
        assert batch.tags is not None
        tag_loss = crit(tag_logits.reshape(-1, tag_logits.size(-1)), batch.tags.reshape(-1))
        label_loss = None
        if label_logits is not None and batch.labels is not None:
            label_loss = crit(label_logits, batch.labels)
        return tag_loss, label_loss, tag_logits, label_logits

    def loss(
        self,
        model: torch.nn.Module,
        batch: SentenceBatch,
        itr: Any = None,
        criterion: Criterion | None = None,
    ) -> tuple[Tensor, int, int]:
        """Summed loss of a batch, its tags and its sentences.

        With a label head the label loss is scaled by tags per sentence, so that averaged over
        tags (``--loss-average tokens``) the objective is mean tag NLL + label_weight × mean
        label NLL (the joint loss of Liu & Lane 2016).
        """
        batch = batch.to(next(model.parameters()).device)
        tag_loss, label_loss, _, _ = self.losses(model, batch, criterion)
        ntokens, nsentences = int(batch.lengths.sum()), len(batch.indices)
        if label_loss is not None:
            weight = model_config(model).label_weight * ntokens / nsentences
            tag_loss = tag_loss + weight * label_loss
        return tag_loss, ntokens, nsentences

    def valid_metrics(self, cfg: Any) -> set[str]:
        """The metrics :meth:`evaluate` reports (``label_acc`` with labelled data)."""
        label = {"label_acc"} if self.label_dictionary is not None else set()
        return {"loss", "ppl", "f1", "precision", "recall", "acc", "sent_acc", "tokens"} | label

    @torch.inference_mode()
    def evaluate(
        self, model: torch.nn.Module, split: str, cfg: Any, device: torch.device
    ) -> dict[str, float]:
        """The objective (``loss``, ``ppl`` its exp), CoNLL span ``f1``, ``precision`` and
        ``recall``, token ``acc``, with a label head ``label_acc``, and ``sent_acc`` (every tag
        and the label right); scores in percent."""
        model.eval()
        t = Tally()
        for batch in self.eval_batches(split, cfg):
            self.tally(t, model, batch.to(device))
        spans = scoring.span_counts(t.gold, t.pred)
        loss = t.tag_nll / max(t.tokens, 1)
        if t.labelled:
            loss += model_config(model).label_weight * t.label_nll / t.labelled
        out = {"loss": loss, "ppl": math.exp(min(loss, 100.0)), "f1": spans.f1,
               "precision": spans.precision, "recall": spans.recall,
               "acc": scoring.token_accuracy(t.gold, t.pred).score}  # fmt: skip
        if t.labelled:
            out["label_acc"] = 100 * t.label_right / t.labelled
        return out | {"sent_acc": 100 * t.sent_right / max(t.sentences, 1), "tokens": t.tokens}

    def tally(self, t: Tally, model: torch.nn.Module, batch: SentenceBatch) -> None:
        """Add one batch's losses and decoded tags and labels to ``t``."""
        assert self.tag_dictionary is not None and batch.tags is not None
        tag_loss, label_loss, tag_logits, label_logits = self.losses(model, batch)
        t.tag_nll += tag_loss.item()
        t.tokens += int(batch.lengths.sum())
        t.sentences += len(batch.indices)
        label_ok = torch.ones(len(batch.indices), dtype=torch.bool)
        if label_loss is not None and label_logits is not None and batch.labels is not None:
            assert self.label_mask is not None
            has = (batch.labels != self.dictionary.pad_index).cpu()
            hyp = decode(label_logits, self.label_mask)
            label_ok = (hyp == batch.labels).cpu() & has
            t.label_nll, t.labelled = t.label_nll + label_loss.item(), t.labelled + int(has.sum())
            t.label_right += int(label_ok.sum())
        tags = self.tag_dictionary
        assert self.tag_mask is not None
        hyp_tags = decode(tag_logits, self.tag_mask).cpu()
        gold_tags = batch.tags.cpu()
        for row, n in enumerate(batch.lengths.tolist()):
            g, h = gold_tags[row, :n].tolist(), hyp_tags[row, :n].tolist()
            t.gold.append([tags[i] for i in g])
            t.pred.append([tags[i] for i in h])
            t.sent_right += int(g == h and bool(label_ok[row]))

    @torch.inference_mode()
    def tag_lines(
        self,
        model: torch.nn.Module,
        lines: list[str],
        device: torch.device,
        batch_size: int = 64,
        limit: LineLimit | None = None,
    ) -> list[dict[str, Any] | None]:
        """Tag raw lines, ``batch_size`` at a time grouped by length (long lines: ``limit``,
        see :meth:`run_lines`).

        Returns one dict per line, in input order: ``tokens`` (list[str]), ``tags`` (list[str],
        one per token), and with a label head ``label`` (str) and ``prob`` (its probability);
        ``None`` for a line skipped as too long.
        """
        assert self.tag_dictionary is not None and self.tag_mask is not None
        results: list[dict[str, Any] | None] = [None] * len(lines)
        for rows, (tag_logits, label_logits) in self.run_lines(
            model, lines, device, batch_size, limit
        ):
            hyp = decode(tag_logits, self.tag_mask).cpu()
            for row, (i, tokens) in enumerate(rows):
                ids = hyp[row, : len(tokens)].tolist()
                r = {"tokens": tokens, "tags": [self.tag_dictionary[j] for j in ids]}
                if label_logits is not None:
                    r |= self.label_result(label_logits[row])
                results[i] = r
        return results

    @torch.inference_mode()
    def classify_lines(
        self,
        model: torch.nn.Module,
        lines: list[str],
        device: torch.device,
        batch_size: int = 64,
        limit: LineLimit | None = None,
    ) -> list[dict[str, Any] | None]:
        """The label head's prediction for raw lines: ``{"tokens", "label", "prob"}`` each
        (``None`` for a line skipped as too long)."""
        if not model_config(model).label_head:
            raise RnnkitError("this tagger has no label head (train it with --label-head)")
        return [
            None if r is None else {"tokens": r["tokens"], "label": r["label"], "prob": r["prob"]}
            for r in self.tag_lines(model, lines, device, batch_size, limit)
        ]


@TASK_REGISTRY.register("classification")
class ClassificationTask(SentenceTask):
    """One label per sentence (intent, topic, sentiment)."""

    name = "classification"
    has_tags = False

    def build(self, cls: type, cfg: Any) -> torch.nn.Module:
        assert self.label_dictionary is not None
        return cls.build(cfg, self.dictionary, self.label_dictionary)

    def loss(
        self,
        model: torch.nn.Module,
        batch: SentenceBatch,
        itr: Any = None,
        criterion: Criterion | None = None,
    ) -> tuple[Tensor, int, int]:
        """Summed label loss of a batch; its "tokens" are its labelled sentences."""
        batch = batch.to(next(model.parameters()).device)
        assert batch.labels is not None
        pad = self.dictionary.pad_index
        crit = criterion or cross_entropy(ignore_index=pad)
        labelled = int((batch.labels != pad).sum())
        return crit(model(batch.tokens, batch.lengths), batch.labels), labelled, labelled

    def valid_metrics(self, cfg: Any) -> set[str]:
        """The metrics :meth:`evaluate` reports."""
        return {"loss", "ppl", "acc"}

    @torch.inference_mode()
    def evaluate(
        self, model: torch.nn.Module, split: str, cfg: Any, device: torch.device
    ) -> dict[str, float]:
        """Label NLL per sentence (``loss``, ``ppl`` its exp) and accuracy ``acc`` (percent)."""
        assert self.label_mask is not None
        model.eval()
        allowed, pad = self.label_mask, self.dictionary.pad_index
        nll, n, right = 0.0, 0, 0
        for batch in self.eval_batches(split, cfg):
            batch = batch.to(device)
            assert batch.labels is not None
            logits = model(batch.tokens, batch.lengths)  # (B, C)
            nll += F.cross_entropy(logits, batch.labels, ignore_index=pad, reduction="sum").item()
            has = batch.labels != pad
            right += int(((decode(logits, allowed) == batch.labels) & has).sum())
            n += int(has.sum())
        loss = nll / max(n, 1)
        return {"loss": loss, "ppl": math.exp(min(loss, 100.0)), "acc": 100 * right / max(n, 1)}

    @torch.inference_mode()
    def classify_lines(
        self,
        model: torch.nn.Module,
        lines: list[str],
        device: torch.device,
        batch_size: int = 64,
        limit: LineLimit | None = None,
    ) -> list[dict[str, Any] | None]:
        """Classify raw lines, ``batch_size`` at a time grouped by length (long lines:
        ``limit``, see :meth:`run_lines`).

        Returns one dict per line, in input order: ``tokens`` (list[str]), ``label`` (str) and
        ``prob`` (its probability under the model); ``None`` for a line skipped as too long.
        """
        results: list[dict[str, Any] | None] = [None] * len(lines)
        for rows, logits in self.run_lines(model, lines, device, batch_size, limit):
            for row, (i, tokens) in enumerate(rows):
                results[i] = {"tokens": tokens, **self.label_result(logits[row])}
        return results
