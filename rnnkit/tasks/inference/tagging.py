""":class:`Tagger` and :class:`Classifier`: what :func:`rnnkit.load` returns for a tagging or a
classification model.

Both label sentences (:class:`SentenceModel`): raw lines (``tag``, ``classify``), every sentence
of a binarized split (``predict_split``) and its validation metrics (``evaluate``). For
``rnnkit generate`` a raw line gives one output line (the tags, space-separated, one per token;
with ``--print-label`` the label of a label head, a tab, then the tags; a classifier's label); a
split gives per sentence ``S-i`` (tokens), ``T-i`` / ``H-i`` (gold / predicted tags) and
``TL-i`` / ``HL-i`` (gold / predicted label, ``HL`` adding its probability after a tab), then
one line of span F1, tag accuracy and label accuracy (:func:`rnnkit.scoring.tag_scores`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO, Any

import torch

from rnnkit import scoring
from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.generation.ensemble import SentenceEnsemble
from rnnkit.reporting import get_reporter
from rnnkit.tasks.base import Batching
from rnnkit.tasks.inference.base import Pretrained
from rnnkit.tasks.inference.requests import (
    GenerateOptions,
    LineBatches,
    LinesRequest,
    SplitRequest,
)
from rnnkit.tasks.lines import LineLimit

Results = list[dict[str, Any] | None]


class SentenceModel(Pretrained):
    """What a tagger and a classifier share: split predictions, metrics and ``generate``."""

    ensemble_class = SentenceEnsemble

    def has_label_head(self) -> bool:
        """Whether the model predicts a sentence label."""
        return True

    def predict_lines(self, lines: list[str], request: LinesRequest, first_line: int) -> Results:
        """``rnnkit generate``'s predictions for raw lines (:meth:`Tagger.tag`, or
        :meth:`Classifier.classify`)."""
        raise NotImplementedError

    def shown(self, result: dict[str, Any], print_label: bool) -> str:
        """The ``rnnkit generate`` output line of one raw line's result."""
        raise NotImplementedError

    def evaluate(
        self, data_dir: str | os.PathLike, subset: str = "valid", batch_size: int | None = None
    ) -> dict[str, float]:
        """The task's validation metrics on a binarized split (percent scores).

        Tagging: ``loss``, ``f1`` (CoNLL spans), ``precision``, ``recall``, token ``acc``, with a
        label head ``label_acc``, and ``sent_acc``; classification: ``loss`` and ``acc``.
        ``batch_size`` defaults to the training one.
        """
        from rnnkit.training.config import TrainConfig

        task = self.data_task(data_dir)
        keys = ("batch_size", "valid_batch_size", "max_tokens")
        trained = {k: v for k, v in self.train_config.items() if k in keys}
        given = {"valid_batch_size": batch_size} if batch_size else {}
        return task.evaluate(self.model, subset, resolve(TrainConfig, trained, given), self.device)

    @torch.inference_mode()
    def predict_split(
        self, data_dir: str | os.PathLike, subset: str = "test", batch_size: int = 64,
        max_tokens: int = 0,
    ) -> Iterator[list[dict[str, Any]]]:  # fmt: skip
        """Tagging or classification of every sentence of a binarized split, one list per batch
        (batches of similar length, so not in file order).

        Each dict has ``id`` (the sentence's index), ``tokens``, and the gold and predicted
        ``gold_tags``/``tags`` (tagging) and ``gold_label``/``label``/``prob`` (classification,
        or a label head; ``gold_label`` is None where the data has no label).
        """
        task = self.data_task(data_dir)
        words, tags, labels = task.dictionary, task.tag_dictionary, task.label_dictionary
        self.model.eval()
        for batch in task.eval_batches(subset, Batching(batch_size, max_tokens)):
            outputs = self.model(batch.tokens.to(self.device), batch.lengths.to(self.device))
            tag_logits, label_logits = outputs if task.has_tags else (None, outputs)
            hyp = None if tag_logits is None else task.best_tags(
                self.model, tag_logits, batch.lengths
            ).cpu()  # fmt: skip
            results = []
            for row, (i, n) in enumerate(zip(batch.indices, batch.lengths.tolist(), strict=True)):
                r: dict[str, Any] = {"id": i, "tokens": words.decode(batch.tokens[row, :n])}
                if hyp is not None and batch.tags is not None:
                    r["gold_tags"] = [tags[j] for j in batch.tags[row, :n].tolist()]
                    r["tags"] = [tags[j] for j in hyp[row, :n].tolist()]
                if label_logits is not None:
                    gold = None if batch.labels is None else int(batch.labels[row])
                    r["gold_label"] = None if gold in (None, words.pad_index) else labels[gold]
                    r |= self.task.label_result(label_logits[row])
                results.append(r)
            yield results

    # --- the command line's hooks ---------------------------------------------------------
    def generate_lines(
        self, batches: LineBatches, lines: LinesRequest, options: GenerateOptions, out: IO[str]
    ) -> None:
        """Tags (or labels) of each raw line, one output line each, flushed per batch; a line
        without tokens, or skipped as too long, gives an empty line."""
        if options.print_label and not self.has_label_head():
            raise RnnkitError(
                "--print-label: this tagger has no label head (train it with --label-head)"
            )
        for batch in batches:
            results = self.predict_lines([text for _, text in batch], lines, batch[0][0])
            out.writelines(
                ("" if r is None or not r["tokens"] else self.shown(r, options.print_label)) + "\n"
                for r in results
            )
            out.flush()

    def generate_split(self, split: SplitRequest, options: GenerateOptions, out: IO[str]) -> None:
        """S-/T-/H-/TL-/HL- lines for every sentence of the split, then its scores."""
        gold_tags: list[str] = []
        pred_tags: list[str] = []
        gold_labels: list[str] = []
        pred_labels: list[str] = []
        count, subset = 0, split.subset
        total = len(self.data_task(split.data).data(subset).sizes)
        predictions = self.predict_split(split.data, subset, split.batch_size or 64,
                                         split.max_tokens)  # fmt: skip
        with get_reporter().progress(f"generate {subset}", total=total) as bar:
            for results in predictions:
                for r in results:
                    i, count = r["id"], count + 1
                    lines = [f"S-{i}\t{' '.join(r['tokens'])}"]
                    if "tags" in r:
                        gold_tags.append(" ".join(r["gold_tags"]))
                        pred_tags.append(" ".join(r["tags"]))
                        lines += [f"T-{i}\t{gold_tags[-1]}", f"H-{i}\t{pred_tags[-1]}"]
                    if r.get("gold_label") is not None:
                        gold_labels.append(r["gold_label"])
                        pred_labels.append(r["label"])
                        lines.append(f"TL-{i}\t{r['gold_label']}")
                    if "label" in r:
                        lines.append(f"HL-{i}\t{r['label']}\t{r['prob']:.4f}")
                    if not options.quiet:
                        out.write("\n".join(lines) + "\n")
                out.flush()
                bar.update(len(results))
        scores = self.split_scores(pred_tags, gold_tags)
        if gold_labels:
            scores += scoring.tag_scores(pred_labels, gold_labels, "label_acc")
        shown = " | ".join(s.text for s in scores) or f"{count} sentences, no gold labels"
        out.write(f"Generate {subset}: {shown}\n")

    def split_scores(self, pred_tags: list[str], gold_tags: list[str]) -> list[Any]:
        """The scores of a split's predicted tags (none without tags)."""
        return []


class Tagger(SentenceModel):
    """A trained tagger: ``tag``; ``classify`` when it has a label head."""

    def has_label_head(self) -> bool:
        from rnnkit.tasks.tagging import model_config  # that module imports this one

        return bool(model_config(self.model).label_head)

    def tag(
        self,
        lines: list[str],
        batch_size: int = 64,
        max_positions: int = 1024,
        skip_invalid: bool = False,
        *,
        source_name: str = "<input>",
        first_line: int = 1,
    ) -> Results:
        """Tag raw lines (the model's tokenizer): one dict per line, in order, with ``tokens``
        and ``tags`` (one per token) and, with a label head, ``label`` and ``prob``. A line of
        more than ``max_positions`` tokens is tagged on its first ones (a warning names it as
        ``source_name:line``), or ``None`` with ``skip_invalid``."""
        limit = LineLimit(max_positions, skip_invalid, source_name, first_line)
        return self.task.tag_lines(self.model, list(lines), self.device, batch_size, limit)

    def classify(
        self,
        lines: list[str],
        batch_size: int = 64,
        max_positions: int = 1024,
        skip_invalid: bool = False,
        *,
        source_name: str = "<input>",
        first_line: int = 1,
    ) -> Results:
        """The label head's ``{"tokens", "label", "prob"}`` per raw line (long lines as in
        :meth:`tag`); a tagger without a label head raises a one-line error."""
        if not self.has_label_head():
            raise RnnkitError(
                "classify() needs a classification model or a tagger with a label head; this "
                "tagger has none (train it with --label-head)"
            )
        limit = LineLimit(max_positions, skip_invalid, source_name, first_line)
        return self.task.classify_lines(self.model, list(lines), self.device, batch_size, limit)

    def predict_lines(self, lines: list[str], request: LinesRequest, first_line: int) -> Results:
        return self.tag(lines, request.batch_size, request.max_positions, request.skip_invalid,
                        source_name=request.source_name, first_line=first_line)  # fmt: skip

    def shown(self, result: dict[str, Any], print_label: bool) -> str:
        tags = " ".join(result["tags"])
        return f"{result['label']}\t{tags}" if print_label else tags

    def split_scores(self, pred_tags: list[str], gold_tags: list[str]) -> list[Any]:
        return scoring.tag_scores(pred_tags, gold_tags, "f1,acc")


class Classifier(SentenceModel):
    """A trained sentence classifier: ``classify``."""

    def classify(
        self,
        lines: list[str],
        batch_size: int = 64,
        max_positions: int = 1024,
        skip_invalid: bool = False,
        *,
        source_name: str = "<input>",
        first_line: int = 1,
    ) -> Results:
        """Label raw lines: one ``{"tokens", "label", "prob"}`` per line, in order. A line of
        more than ``max_positions`` tokens is labelled on its first ones (a warning names it),
        or ``None`` with ``skip_invalid``."""
        limit = LineLimit(max_positions, skip_invalid, source_name, first_line)
        return self.task.classify_lines(self.model, list(lines), self.device, batch_size, limit)

    def predict_lines(self, lines: list[str], request: LinesRequest, first_line: int) -> Results:
        return self.classify(lines, request.batch_size, request.max_positions,
                             request.skip_invalid, source_name=request.source_name,
                             first_line=first_line)  # fmt: skip

    def shown(self, result: dict[str, Any], print_label: bool) -> str:
        return str(result["label"])
