"""The Python API over trained models: ``rnnkit.load(path)``.

:func:`load` reads a checkpoint (safely: ``weights_only``), rebuilds its task and model, and
returns a :class:`Pretrained` whose methods fit the checkpoint's task. The command line calls the
same methods, so there is one implementation of sampling and scoring.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task, task_from_checkpoint
from rnnkit.training.checkpoint import load_checkpoint
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

    def score(self, lines: list[str]) -> list[dict[str, Any]]:
        """Log-probability (nats), token count and perplexity of each line."""
        self.require("lm", method="score")
        return self.task.score_lines(self.model, list(lines), self.device)


def load(path: str | os.PathLike, device: str = "auto") -> Pretrained:
    """Load a checkpoint written by ``rnnkit train`` for inference on ``device``."""
    state = load_checkpoint(path)
    task = task_from_checkpoint(state)
    model = task.model_from_checkpoint(state)
    return Pretrained(task, model, state, pick_device(device))
