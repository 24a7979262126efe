"""Sequence tagging (slots, with an optional sentence label) and sentence classification.

Data is what ``rnnkit preprocess --task tagging|classification`` writes: ``{split}.in`` (tokens,
no ``</s>``), ``{split}.tags`` (one tag per token, tagging only) and ``{split}.label`` (one label
per sentence, where the folder had a ``label`` file). Training batches group sentences of
similar length (:mod:`rnnkit.data.buckets`) in an order drawn from one seed per epoch, and
resume mid-epoch exactly. Evaluation reports the objective, CoNLL span F1 (:mod:`rnnkit.scoring`),
token accuracy and label accuracy. Decoding never outputs a special symbol, so a tag or label
unseen in training (``<unk>`` in the data) is scored as a miss and never predicted. A tagger
with a CRF (``--crf true``) is trained on the CRF's sentence NLL and decoded by batched Viterbi
under the BIO rules (:meth:`TaggingTask.best_tags`), in validation, ``generate`` and
``rnnkit.load(...).tag`` alike; its label head keeps the cross-entropy of the criterion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import scoring
from rnnkit.data.sentences import SentenceBatch
from rnnkit.errors import RnnkitError
from rnnkit.tasks import TASK_REGISTRY
from rnnkit.tasks.base import (
    Batching,
    Shard,
)  # fmt: skip
from rnnkit.tasks.inference.tagging import Classifier, Tagger
from rnnkit.tasks.lines import LineLimit
from rnnkit.tasks.sentence import SentenceTask, decode, model_config, model_crf, predictable

__all__ = [
    "ClassificationTask", "SentenceTask", "TaggingTask", "Tally", "decode", "model_config",
    "predictable",
]  # fmt: skip
from rnnkit.training.criteria import Criterion, cross_entropy

if TYPE_CHECKING:
    from rnnkit.training.config import TrainConfig


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
    inference = Tagger

    def build(self, cls: type, cfg: Any) -> torch.nn.Module:
        assert self.tag_dictionary is not None
        return cls.build(cfg, self.dictionary, self.tag_dictionary, self.label_dictionary)

    def losses(
        self, model: torch.nn.Module, batch: SentenceBatch, criterion: Criterion | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """Summed tag loss, summed label loss (None without a label head), tag logits
        (B, T, K) and label logits (B, C) or None. With a CRF the tag loss is its summed
        sentence NLL, whatever the criterion (label smoothing applies to the label head only)."""
        pad = self.dictionary.pad_index
        crit = criterion or cross_entropy(ignore_index=pad)
        tag_logits, label_logits = model(batch.tokens, batch.lengths)
        assert batch.tags is not None
        crf = model_crf(model)
        if crf is not None:
            tag_loss = crf(tag_logits, batch.tags, batch.lengths.to(tag_logits.device)).sum()
        else:
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

    def valid_metrics(self, cfg: TrainConfig) -> set[str]:
        """The metrics :meth:`evaluate` reports (``label_acc`` with labelled data)."""
        label = {"label_acc"} if self.label_dictionary is not None else set()
        return {"loss", "ppl", "f1", "precision", "recall", "acc", "sent_acc", "tokens"} | label

    @torch.inference_mode()
    def evaluate(
        self, model: torch.nn.Module, split: str, cfg: TrainConfig | Batching,
        device: torch.device, *, shard: Shard = (0, 1),
    ) -> dict[str, float]:  # fmt: skip
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

    def best_tags(self, model: torch.nn.Module, tag_logits: Tensor, lengths: Tensor) -> Tensor:
        """Predicted tag ids (B, T) from ``tag_logits`` (B, T, K) and ``lengths`` (B,): the
        Viterbi path of the model's CRF, else the best predictable tag at each step. Every
        caller decodes here (validation, ``generate`` on a split or raw lines, ``tag``)."""
        assert self.tag_mask is not None
        crf = model_crf(model)
        if crf is None:
            return decode(tag_logits, self.tag_mask)
        return crf.decode(tag_logits, lengths.to(tag_logits.device)).tags

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
        hyp_tags = self.best_tags(model, tag_logits, batch.lengths).cpu()
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
            lengths = torch.tensor([len(tokens) for _, tokens in rows])
            hyp = self.best_tags(model, tag_logits, lengths).cpu()
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
    inference = Classifier
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

    def valid_metrics(self, cfg: TrainConfig) -> set[str]:
        """The metrics :meth:`evaluate` reports."""
        return {"loss", "ppl", "acc"}

    @torch.inference_mode()
    def evaluate(
        self, model: torch.nn.Module, split: str, cfg: TrainConfig | Batching,
        device: torch.device, *, shard: Shard = (0, 1),
    ) -> dict[str, float]:  # fmt: skip
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
