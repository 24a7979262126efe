""":class:`LanguageModel`: what :func:`rnnkit.load` returns for a language model.

It samples text (streamed piece by piece or whole), scores raw lines (log-probability, tokens,
perplexity) and measures perplexity on a binarized split; ``rnnkit sample`` and ``rnnkit score``
call these methods, so the command line and Python give the same numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO, Any, ClassVar

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.generation.ensemble import LanguageModelEnsemble
from rnnkit.tasks.inference.base import Pretrained
from rnnkit.tasks.inference.requests import LineBatches, LinesRequest, ScoreOptions, SplitRequest
from rnnkit.tasks.lines import LineLimit


class LanguageModel(Pretrained):
    """A trained language model: ``sample``, ``sample_stream``, ``score``, ``perplexity``."""

    shown_names: ClassVar[dict[str, str]] = {"sample_stream": "sample"}
    generate_hint: ClassVar[str] = "rnnkit sample generates from language models"
    ensemble_class = LanguageModelEnsemble

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
        from rnnkit.tasks import load_task
        from rnnkit.training.config import TrainConfig

        task = load_task(data_dir, expect=self.task_name)
        if task.dictionary != self.task.dictionary:
            raise RnnkitError(f"{data_dir}: its dictionary differs from the model's")
        keys = ("batch_size", "valid_batch_size", "bptt")
        trained = {k: v for k, v in self.train_config.items() if k in keys}
        given = {"valid_batch_size": batch_size, "bptt": bptt}
        cfg = resolve(TrainConfig, trained, {k: v for k, v in given.items() if v is not None})
        return task.evaluate(self.model, subset, cfg, self.device)

    def evaluate(
        self, data_dir: str | os.PathLike, subset: str = "valid", batch_size: int | None = None
    ) -> dict[str, float]:
        """:meth:`perplexity` with the training window (the task's validation metrics)."""
        return self.perplexity(data_dir, subset, batch_size=batch_size)

    def score(
        self,
        lines: list[str],
        batch_size: int = 64,
        max_positions: int = 1024,
        skip_invalid: bool = False,
        *,
        source_name: str = "<input>",
        first_line: int = 1,
        token_scores: bool = False,
    ) -> list[dict[str, Any] | None]:
        """Log-probability (nats), token count and perplexity of each line (with
        ``token_scores`` also ``token_logprobs``, each token's log-prob, ``</s>`` last).

        A line of more than ``max_positions`` tokens (``</s>`` included) is scored on its first
        ones (a warning names it as ``source_name:line``, the first of ``lines`` being
        ``first_line``), or skipped (``None``) with ``skip_invalid``.
        """
        limit = LineLimit(max_positions, skip_invalid, source_name, first_line)
        return self.task.score_lines(self.model, list(lines), self.device, batch_size, limit,
                                     token_scores)  # fmt: skip

    # --- the command line's hooks ---------------------------------------------------------
    def score_split(self, split: SplitRequest, options: ScoreOptions, out: IO[str]) -> None:
        """``rnnkit score DATA``: loss, perplexity, bits per token and tokens of a split."""
        m = self.perplexity(split.data, split.subset, split.batch_size, options.bptt)
        if options.as_json:
            out.write(json.dumps({"subset": split.subset, **m}) + "\n")
            return
        out.write(
            f"{split.subset}: loss {m['loss']:.4f} nats/token | ppl {m['ppl']:.2f} | "
            f"bpc {m['bpc']:.4f} | tokens {m['tokens']}\n"
        )

    def score_lines(self, batches: LineBatches, lines: LinesRequest, out: IO[str]) -> None:
        """``rnnkit score --input``: one JSON result per raw line (null: skipped as too long),
        printed after every batch."""
        for batch in batches:
            results = self.score([text for _, text in batch], lines.batch_size,
                                 lines.max_positions, lines.skip_invalid,
                                 source_name=lines.source_name, first_line=batch[0][0],
                                 token_scores=lines.token_scores)  # fmt: skip
            out.writelines(json.dumps(r) + "\n" for r in results)
            out.flush()
