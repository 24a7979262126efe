"""The Python API over trained models: ``rnnkit.load(path)``.

:func:`load` reads a checkpoint (safely: ``weights_only``), rebuilds its task and model, and
returns a :class:`Pretrained` whose methods fit the checkpoint's task (``sample``/``score``: lm;
``translate``: translation; ``tag``: tagging; ``classify``: classification, or a tagger with a
label head); any other method raises a one-line :class:`~rnnkit.errors.RnnkitError`. The command
line calls the same methods, so there is one implementation of each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import torch

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task, task_from_checkpoint
from rnnkit.tasks.lines import LineLimit
from rnnkit.tasks.tagging import model_config
from rnnkit.training.checkpoint import load_checkpoint, rebuilding
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import pick_device


class Pretrained:
    """A trained model ready for inference, with its task's dictionaries and tokenizer."""

    def __init__(
        self, task: Any, model: torch.nn.Module, state: dict[str, Any], device: torch.device
    ):
        self.task, self.model, self.device = task, model, device
        self.arch: str = state["arch"]
        self.task_name: str = state["task"]
        self.train_config: dict[str, Any] = state.get("train_config", {})
        self.model.to(device).eval()

    def require(self, *tasks: str, method: str) -> None:
        if self.task_name not in tasks:
            raise RnnkitError(
                f"{method}() needs a model of task {' or '.join(tasks)}; this checkpoint is "
                f"task {self.task_name!r}"
            )

    def sample_stream(
        self,
        prime: str = "",
        length: int = 200,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: str | None = None,
    ) -> Iterator[str]:
        """Yield generated text piece by piece (for streaming), continuing ``prime``."""
        self.require("lm", method="sample")
        from rnnkit.generation.sampling import sample_text

        return sample_text(
            self.model,
            self.task.dictionary,
            self.task.tokenizer,
            prime=prime,
            length=length,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            stop=stop,
        )

    def sample(self, prime: str = "", length: int = 200, **options: Any) -> str:
        """The prime followed by ``length`` generated tokens, as ``rnnkit sample`` prints it."""
        return prime + "".join(self.sample_stream(prime, length, **options))

    def perplexity(
        self,
        data_dir: str | os.PathLike,
        subset: str = "valid",
        batch_size: int | None = None,
        bptt: int | None = None,
    ) -> dict[str, float]:
        """Loss (nats/token), perplexity and bits per token on a binarized split of ``data_dir``.

        Streams and window default to the ones the model was trained with (Zaremba et al.
        evaluate with the training batch and bptt).
        """
        self.require("lm", method="perplexity")
        task = load_task(data_dir, expect=self.task_name)
        if task.dictionary != self.task.dictionary:
            raise RnnkitError(f"{data_dir}: its dictionary differs from the model's")
        keys = ("batch_size", "valid_batch_size", "bptt")
        trained = {k: v for k, v in self.train_config.items() if k in keys}
        given = {"valid_batch_size": batch_size, "bptt": bptt}
        cfg = resolve(TrainConfig, trained, {k: v for k, v in given.items() if v is not None})
        return task.evaluate(self.model, subset, cfg, self.device)

    def translate(
        self,
        lines: list[str],
        beam: int = 5,
        batch_size: int = 64,
        max_source_positions: int = 1024,
        **search: Any,
    ) -> list[str]:
        """Translate raw lines (the model's tokenizer in, detokenized out): one string each.

        ``search`` takes any :class:`~rnnkit.generation.search.SearchConfig` field
        (``lenpen``, ``max_len_b``, ``sampling``, ``top_k``…). An empty line gives ``""``.
        """
        self.require("translation", method="translate")
        from rnnkit.generation.search import SearchConfig
        from rnnkit.tasks.translation import TranslateOptions

        cfg = resolve(SearchConfig, {"beam": beam, **search}, source="search option")
        options = TranslateOptions(max_source_positions=max_source_positions)
        out: list[str] = []
        for start in range(0, len(lines), batch_size):
            chunk = list(lines[start : start + batch_size])
            for t in self.task.translate_lines(self.model, chunk, cfg, self.device, options):
                out.append(self.task.detokenize(t.tokens[0]) if t.tokens else "")
        return out

    def score(
        self,
        lines: list[str],
        batch_size: int = 64,
        max_positions: int = 1024,
        skip_invalid: bool = False,
        *,
        source_name: str = "<input>",
        first_line: int = 1,
    ) -> list[dict[str, Any] | None]:
        """Log-probability (nats), token count and perplexity of each line.

        A line of more than ``max_positions`` tokens (``</s>`` included) is scored on its first
        ones (a warning names it as ``source_name:line``, the first of ``lines`` being
        ``first_line``), or skipped (``None``) with ``skip_invalid``.
        """
        self.require("lm", method="score")
        limit = LineLimit(max_positions, skip_invalid, source_name, first_line)
        return self.task.score_lines(self.model, list(lines), self.device, batch_size, limit)

    def tag(
        self,
        lines: list[str],
        batch_size: int = 64,
        max_positions: int = 1024,
        skip_invalid: bool = False,
        *,
        source_name: str = "<input>",
        first_line: int = 1,
    ) -> list[dict[str, Any] | None]:
        """Tag raw lines (the model's tokenizer): one dict per line, in order, with ``tokens``
        and ``tags`` (one per token) and, with a label head, ``label`` and ``prob``. Long lines
        as in :meth:`score` (truncated, or ``None``)."""
        self.require("tagging", method="tag")
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
    ) -> list[dict[str, Any] | None]:
        """Label raw lines: one ``{"tokens", "label", "prob"}`` per line, in order (long lines
        as in :meth:`score`). Works for a classification model and for a tagger trained with
        ``--label-head``."""
        self.require("classification", "tagging", method="classify")
        if self.task_name == "tagging" and not model_config(self.model).label_head:
            raise RnnkitError(
                "classify() needs a classification model or a tagger with a label head; this "
                "tagger has none (train it with --label-head)"
            )
        limit = LineLimit(max_positions, skip_invalid, source_name, first_line)
        return self.task.classify_lines(self.model, list(lines), self.device, batch_size, limit)

    def data_task(self, data_dir: str | os.PathLike) -> Any:
        """The task of the binarized ``data_dir``: of this model's task, with its dictionaries."""
        task = load_task(data_dir, expect=self.task_name)
        ours = self.task.checkpoint_data()["dictionaries"]
        theirs = task.checkpoint_data()["dictionaries"]
        for name in sorted(ours.keys() & theirs.keys()):
            if ours[name] != theirs[name]:
                raise RnnkitError(
                    f"{data_dir}: its {name!r} dictionary differs from the model's ({self.arch})"
                )
        return task

    def evaluate(
        self, data_dir: str | os.PathLike, subset: str = "valid", batch_size: int | None = None
    ) -> dict[str, float]:
        """The task's validation metrics on a binarized split (percent scores).

        Tagging: ``loss``, ``f1`` (CoNLL spans), ``precision``, ``recall``, token ``acc``, with a
        label head ``label_acc``, and ``sent_acc``; classification: ``loss`` and ``acc``; lm:
        :meth:`perplexity`. ``batch_size`` defaults to the training one.
        """
        if self.task_name == "lm":
            return self.perplexity(data_dir, subset, batch_size=batch_size)
        self.require("tagging", "classification", method="evaluate")
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
        self.require("tagging", "classification", method="predict_split")
        from rnnkit.tasks.tagging import decode

        task = self.data_task(data_dir)
        sizes = SimpleNamespace(batch_size=batch_size, valid_batch_size=None, max_tokens=max_tokens)
        words, tags, labels = task.dictionary, task.tag_dictionary, task.label_dictionary
        self.model.eval()
        for batch in task.eval_batches(subset, sizes):
            outputs = self.model(batch.tokens.to(self.device), batch.lengths.to(self.device))
            tag_logits, label_logits = outputs if task.has_tags else (None, outputs)
            hyp = None if tag_logits is None else decode(tag_logits, task.tag_mask).cpu()
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


def load(path: str | os.PathLike, device: str = "auto") -> Pretrained:
    """Load a checkpoint written by ``rnnkit train`` for inference on ``device``.

    A file that is not a usable checkpoint (a folder, foreign, truncated, unsafe, incomplete,
    or with weights that do not fit its config) raises a one-line error naming it.
    """
    state = load_checkpoint(path)
    with rebuilding(path):
        task = task_from_checkpoint(state)
        model = task.model_from_checkpoint(state)
    return Pretrained(task, model, state, pick_device(device))
