"""Translation's files and batches: raw parallel text in, sentence-pair batches out.

:class:`TranslationFiles` is what ``rnnkit preprocess --task translation`` asks of the task
(``PREFIX.SRC`` and ``PREFIX.TGT`` a split, ``dict.{lang}.txt``, ``{split}.{src}-{tgt}.{lang}``
outputs); :class:`PairBatch` and :func:`collate` make the training batches; the two small
helpers at the end turn training options into validation batching and ``--eval-bleu-args``
into a :class:`~rnnkit.generation.search.SearchConfig`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from rnnkit.config import resolve
from rnnkit.data.corpus import Stream
from rnnkit.errors import RnnkitError
from rnnkit.generation.search import SearchConfig
from rnnkit.tasks.base import DictionarySpec

if TYPE_CHECKING:
    from rnnkit.data.preprocess import PreprocessConfig
    from rnnkit.training.config import TrainConfig


@dataclass
class PairBatch:
    """A batch of sentence pairs, right-padded: source (B, S), decoder input and target (B, T)."""

    ids: torch.Tensor  # (B,) example indices in the split
    src_tokens: torch.Tensor
    src_lengths: torch.Tensor  # (B,)
    prev_output_tokens: torch.Tensor  # </s> y_1 … y_{T-1}
    target: torch.Tensor  # y_1 … y_T (the last real one is </s>)

    def to(self, device: torch.device) -> PairBatch:
        fields = (self.ids, self.src_tokens, self.src_lengths, self.prev_output_tokens, self.target)
        return PairBatch(*(t.to(device) for t in fields))


def collate(
    ids: Sequence[int], srcs: Sequence[np.ndarray], tgts: Sequence[np.ndarray], pad: int, eos: int
) -> PairBatch:
    """Pad a list of (source, target) id arrays into a :class:`PairBatch`."""
    b = len(ids)
    src = torch.full((b, max(len(s) for s in srcs)), pad, dtype=torch.long)
    tgt = torch.full((b, max(len(t) for t in tgts)), pad, dtype=torch.long)
    prev = tgt.clone()
    for i, (s, t) in enumerate(zip(srcs, tgts, strict=True)):
        src[i, : len(s)] = torch.from_numpy(s.astype(np.int64))
        tgt[i, : len(t)] = torch.from_numpy(t.astype(np.int64))
        prev[i, 0] = eos
        prev[i, 1 : len(t)] = tgt[i, : len(t) - 1]
    lengths = torch.tensor([len(s) for s in srcs])
    return PairBatch(torch.tensor(list(ids)), src, lengths, prev, tgt)


class TranslationFiles:
    """What ``rnnkit preprocess`` asks of the translation task (the preprocess class methods
    of :class:`~rnnkit.tasks.base.Task`): ``PREFIX.SRC`` and ``PREFIX.TGT`` a split,
    ``dict.{lang}.txt``, ``{split}.{src}-{tgt}.{lang}.{bin,idx}``."""

    @classmethod
    def check_preprocess(cls, cfg: PreprocessConfig) -> None:
        if not (cfg.source_lang and cfg.target_lang):
            raise RnnkitError("--task translation needs -s/--source-lang and -t/--target-lang")
        if cfg.source_lang == cfg.target_lang:
            raise RnnkitError(f"source and target language are both {cfg.source_lang!r}")
        if cfg.joined_dictionary and cfg.srcdict and cfg.tgtdict:
            raise RnnkitError("--joined-dictionary takes --srcdict or --tgtdict, not both")

    @classmethod
    def streams(cls, cfg: PreprocessConfig) -> tuple[Stream, ...]:
        src, tgt = cfg.source_lang, cfg.target_lang
        return tuple(
            Stream(lang, "text", f"{src}-{tgt}.{lang}", f"dict.{lang}.txt", True)
            for lang in (src, tgt)
            if lang
        )

    @classmethod
    def input_files(cls, prefix: str, streams: Sequence[Stream]) -> tuple[Path, ...]:
        return tuple(Path(f"{prefix}.{s.name}") for s in streams)

    @classmethod
    def dictionary_specs(
        cls, cfg: PreprocessConfig, streams: Sequence[Stream]
    ) -> list[DictionarySpec]:
        """Thresholds and sizes per side (``--thresholdsrc`` …, default ``--threshold`` …);
        with ``--joined-dictionary`` both sides share one (counted once over both)."""

        def side(reuse: str | None, threshold: int | None, nwords: int | None) -> DictionarySpec:
            return DictionarySpec(reuse, cfg.threshold if threshold is None else threshold,
                                  cfg.nwords if nwords is None else nwords)  # fmt: skip

        src = side(cfg.srcdict, cfg.thresholdsrc, cfg.nwordssrc)
        tgt = side(cfg.tgtdict, cfg.thresholdtgt, cfg.nwordstgt)
        if cfg.joined_dictionary:
            src = tgt = DictionarySpec(cfg.srcdict or cfg.tgtdict, src.threshold, src.nwords)
        return [src, tgt]


def valid_config(cfg: TrainConfig) -> TrainConfig:
    """Validation batches: ``--valid-batch-size`` sentences (default ``--batch-size``)."""
    return dataclasses.replace(cfg, batch_size=cfg.valid_batch_size or cfg.batch_size)


def bleu_search_config(args: str) -> SearchConfig:
    """``--eval-bleu-args`` JSON → :class:`SearchConfig`."""
    try:
        fields = json.loads(args or "{}")
    except json.JSONDecodeError as e:
        raise RnnkitError(f"--eval-bleu-args: invalid JSON: {e.msg}") from None
    if not isinstance(fields, dict):
        raise RnnkitError(
            f'--eval-bleu-args: expected a JSON object, e.g. {{"beam": 4}}; got {args}'
        )
    try:
        return resolve(SearchConfig, fields, source="--eval-bleu-args")
    except RnnkitError as e:
        if "--eval-bleu-args" in str(e):
            raise
        raise RnnkitError(f"--eval-bleu-args: {e}") from None
