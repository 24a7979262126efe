"""Translation: parallel binarized data, teacher-forced training, decoding and BLEU.

Data is ``{split}.{src}-{tgt}.{lang}.{bin,idx}`` with ``dict.{lang}.txt`` (``rnnkit preprocess
--task translation``); both sides end in ``</s>``. Training batches are length-bucketed under
``--max-tokens``/``--batch-size`` (:mod:`rnnkit.data.buckets`), in an order drawn once per epoch
from the run's data RNG and kept in the iterator's state, so a resumed run continues mid-epoch
with the same batches. The decoder input is the target shifted right behind ``</s>`` (fairseq's
start symbol). Decoding goes through :func:`rnnkit.generation.search.generate`; everything the
command line and the Python API translate passes through :meth:`TranslationTask.translate`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rnnkit.config import resolve
from rnnkit.data.binarized import IndexedDataset, data_paths
from rnnkit.data.buckets import BatchIterator, batch_by_size
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.generation.forced import force, pad_rows
from rnnkit.generation.search import Hypothesis, SearchConfig, generate, replace_unk
from rnnkit.models import MODEL_REGISTRY, resolve_arch
from rnnkit.reporting import get_reporter
from rnnkit.tasks import TASK_REGISTRY
from rnnkit.tasks.base import Batching, Shard, TaskBase, tokenizer_name
from rnnkit.tasks.inference.translation import Translator
from rnnkit.tasks.translation_data import (
    PairBatch,
    TranslationFiles,
    bleu_search_config,
    collate,
    valid_config,
)  # fmt: skip
from rnnkit.tokenizers import Tokenizer, load_tokenizer, tokenizer_from_state
from rnnkit.training import preflight
from rnnkit.training.checkpoint import load_weights
from rnnkit.training.config import TranslationTrainOptions
from rnnkit.training.criteria import Criterion, cross_entropy

if TYPE_CHECKING:
    from rnnkit.training.config import TrainConfig


__all__ = ["PairBatch", "TranslateOptions", "Translation", "TranslationTask", "collate"]


@dataclass(frozen=True)
class TranslateOptions:
    """How raw lines are prepared and post-edited (see :meth:`TranslationTask.translate_lines`)."""

    max_source_positions: int = 1024
    skip_invalid: bool = False
    replace_unk: bool = False
    align_dict: Mapping[str, str] | None = None
    source_name: str = "<input>"
    first_line: int = 1


@dataclass
class Translation:
    """One raw line's decoding: its source tokens and the n-best hypotheses, best first."""

    source: list[str]
    hypotheses: list[Hypothesis] = field(default_factory=list)
    tokens: list[list[str]] = field(default_factory=list)  # target tokens per hypothesis


@TASK_REGISTRY.register("translation")
class TranslationTask(TranslationFiles, TaskBase):
    """Sentence-level translation between a source and a target language."""

    name = "translation"
    inference = Translator
    train_options = TranslationTrainOptions

    def __init__(
        self,
        src_dict: Dictionary,
        tgt_dict: Dictionary,
        tokenizer: Tokenizer,
        langs: tuple[str, str],
        data_dir: str | None = None,
    ) -> None:
        self.src_dict, self.tgt_dict, self.tokenizer = src_dict, tgt_dict, tokenizer
        self.dictionary = tgt_dict  # what the loss ignores padding of
        self.src_lang, self.tgt_lang = langs
        self.data_dir = data_dir
        self._datasets: dict[str, tuple[IndexedDataset, IndexedDataset]] = {}

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_data_dir(cls, data_dir: str | os.PathLike, meta: Mapping[str, Any]) -> TranslationTask:
        opts = meta.get("options", {})
        src, tgt = opts.get("source_lang"), opts.get("target_lang")
        if not (src and tgt):
            raise RnnkitError(f"{data_dir}/preprocess.json: no source_lang/target_lang")
        name = tokenizer_name(meta)
        d = Path(data_dir)
        return cls(Dictionary.load(d / f"dict.{src}.txt"), Dictionary.load(d / f"dict.{tgt}.txt"),
                   load_tokenizer(name, data_dir), (src, tgt), os.fspath(data_dir))  # fmt: skip

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any]) -> TranslationTask:
        dicts = state["dictionaries"]
        src = Dictionary.from_lines(dicts["source"], source="checkpoint source dictionary")
        tgt = Dictionary.from_lines(dicts["target"], source="checkpoint target dictionary")
        langs = tuple(state["langs"])
        return cls(src, tgt, tokenizer_from_state(state["tokenizer"]), langs)  # type: ignore[arg-type]

    def checkpoint_data(self) -> dict[str, Any]:
        return {
            "dictionaries": {
                "source": self.src_dict.to_lines(),
                "target": self.tgt_dict.to_lines(),
            },
            "tokenizer": self.tokenizer.state(),
            "langs": [self.src_lang, self.tgt_lang],
        }

    def build_model(
        self, arch: str, *layers: Mapping[str, Any] | None
    ) -> tuple[torch.nn.Module, Any]:
        cls, cfg = resolve_arch(arch, *layers, task=self.name)
        return cls.build(cfg, self.src_dict, self.tgt_dict), cfg

    def model_from_checkpoint(self, state: Mapping[str, Any]) -> torch.nn.Module:
        cls = MODEL_REGISTRY.get(state["model"])
        model = cls.build(resolve(cls.config_class, state["model_config"]), self.src_dict,
                          self.tgt_dict)  # fmt: skip
        load_weights(model, state["model_state"])
        return model

    # --- data ------------------------------------------------------------------------------
    def split_prefix(self, split: str) -> Path:
        """``DATA/{split}.{src}-{tgt}``, or ``{split}.{tgt}-{src}`` when only the pair's files
        in that order exist: as fairseq, a pair trains in either direction."""
        d = Path(self.data_dir or ".")
        prefix = d / f"{split}.{self.src_lang}-{self.tgt_lang}"
        other = d / f"{split}.{self.tgt_lang}-{self.src_lang}"
        if (
            not Path(f"{prefix}.{self.src_lang}.idx").is_file()
            and Path(f"{other}.{self.src_lang}.idx").is_file()
        ):
            return other
        return prefix

    def datasets(self, split: str) -> tuple[IndexedDataset, IndexedDataset]:
        """The memory-mapped source and target datasets of ``split``."""
        if self.data_dir is None:
            raise RnnkitError("this task was loaded from a checkpoint and has no data directory")
        if split not in self._datasets:
            prefix = self.split_prefix(split)
            src = IndexedDataset(f"{prefix}.{self.src_lang}")
            tgt = IndexedDataset(f"{prefix}.{self.tgt_lang}")
            if len(src) != len(tgt):
                raise RnnkitError(f"{prefix}: {len(src)} source but {len(tgt)} target sentences")
            self._datasets[split] = (src, tgt)
        return self._datasets[split]

    def batches(
        self, split: str, cfg: TrainConfig | Batching, seed: int | None = None, limit: bool = False
    ) -> list[np.ndarray]:
        """Length-bucketed batches of ``split``; ``limit`` skips over-long pairs with a warning."""
        src, tgt = self.datasets(split)
        keep = np.arange(len(src))
        if limit:
            ok = (src.sizes <= cfg.max_source_positions) & (tgt.sizes <= cfg.max_target_positions)
            if not ok.all():
                get_reporter().warning(
                    f"{split}: skipped {int((~ok).sum())} pairs longer than "
                    f"--max-source-positions {cfg.max_source_positions} / "
                    f"--max-target-positions {cfg.max_target_positions}"
                )
            keep = keep[ok]
        sizes = np.maximum(src.sizes[keep], tgt.sizes[keep]).astype(np.int64)
        return [keep[b] for b in batch_by_size(sizes, cfg.batch_size, cfg.max_tokens, seed)]

    def train_iterator(
        self,
        cfg: TrainConfig,
        model: torch.nn.Module,
        device: torch.device,
        generator: torch.Generator,
        resume: Mapping[str, Any] | None = None,
        *,
        shard: Shard = (0, 1),
    ) -> BatchIterator:
        """This epoch's batches of ``train``: one global order from a seed drawn from
        ``generator`` (or the resumed one), of which worker ``rank`` of ``world`` (``shard``)
        takes every ``world``-th batch. The saved position counts global batches, so a run
        resumes at the next batch of that order under any world size
        (:meth:`~rnnkit.data.buckets.BatchIterator.for_epoch`)."""
        return BatchIterator.for_epoch(
            lambda seed: self.batches("train", cfg, seed, limit=True),
            lambda ids: self.collate("train", ids), generator, resume, shard,
        )  # fmt: skip

    def collate(self, split: str, ids: Sequence[int]) -> PairBatch:
        """The :class:`PairBatch` of examples ``ids`` of ``split``."""
        src, tgt = self.datasets(split)
        d = self.tgt_dict
        return collate(ids, [src[i] for i in ids], [tgt[i] for i in ids], d.pad_index, d.eos_index)

    # --- checks before training (rnnkit.training.preflight) --------------------------------
    def check_split(self, split: str, cfg: TrainConfig, *, train: bool, world: int = 1) -> None:
        """``split`` exists with a target per source, has pairs to use (``train``: within
        ``--max-source/target-positions``) that fit ``--max-tokens``, enough for ``world``
        workers, and its first batch builds. Reads the index and one batch only."""
        assert self.data_dir is not None
        langs = self.split_prefix(split).name[len(split) :]  # .SRC-TGT (or .TGT-SRC)
        files = [p for lang in (self.src_lang, self.tgt_lang)
                 for p in data_paths(Path(self.data_dir) / f"{split}{langs}.{lang}")]  # fmt: skip
        preflight.require_split(self.data_dir, split, files, f"{langs}.{self.src_lang}.idx", train)
        src, tgt = self.datasets(split)
        preflight.require_nonempty(self.data_dir, split, len(src), "sentence pairs", train)
        ids = np.arange(len(src))
        if train:
            ids = ids[
                (src.sizes <= cfg.max_source_positions) & (tgt.sizes <= cfg.max_target_positions)
            ]
            if len(ids) == 0:
                raise preflight.PreflightError(
                    f"all {len(src)} pairs of the {split!r} split in {self.data_dir} are longer "
                    f"than --max-source-positions {cfg.max_source_positions} / "
                    f"--max-target-positions {cfg.max_target_positions}"
                )
            preflight.check_workers(self.data_dir, split, len(ids), world)
        sizes = np.maximum(src.sizes[ids], tgt.sizes[ids]).astype(np.int64)
        preflight.check_max_tokens(self.data_dir, split, sizes, ids, cfg.max_tokens)
        size = cfg.batch_size if train else valid_config(cfg).batch_size
        self.collate(split, ids[preflight.first_batch(sizes, size, cfg.max_tokens)].tolist())

    def check_options(self, cfg: TrainConfig) -> None:
        """``--eval-bleu-args`` holds valid decoding options (read at the start, not when the
        first validation decodes)."""
        bleu_search_config(cfg.eval_bleu_args)

    def valid_metrics(self, cfg: TrainConfig) -> set[str]:
        """The metrics :meth:`evaluate` reports."""
        return {"loss", "ppl", "tokens"} | ({"bleu"} if cfg.eval_bleu else set())

    # --- loss ------------------------------------------------------------------------------
    def loss(
        self,
        model: torch.nn.Module,
        batch: PairBatch,
        itr: Any = None,
        criterion: Criterion | None = None,
    ) -> tuple[torch.Tensor, int, int]:
        """Summed loss of a batch (``criterion`` or plain NLL), its target tokens and sentences."""
        device = next(model.parameters()).device
        batch = batch.to(device)
        pad = self.tgt_dict.pad_index
        keep = batch.target != pad  # (B, T): the output layer and loss skip padding
        # (N, V) logits, or a copy model's log-probs (their own log-softmax): cross-entropy takes
        # both; the same sum as over every position with padding ignored
        scores, _ = model(batch.src_tokens, batch.src_lengths, batch.prev_output_tokens, keep=keep)
        loss = (criterion or cross_entropy(ignore_index=pad))(scores, batch.target[keep])
        return loss, int(keep.sum()), batch.target.size(0)

    @torch.inference_mode()
    def evaluate(
        self, model: torch.nn.Module, split: str, cfg: TrainConfig, device: torch.device,
        *, shard: Shard = (0, 1),
    ) -> dict[str, float]:  # fmt: skip
        """NLL per target token (nats), perplexity, and with ``--eval-bleu`` sacreBLEU of the
        detokenized translations against the detokenized references."""
        model.eval()
        total, count = 0.0, 0
        vcfg = valid_config(cfg)
        for ids in self.batches(split, vcfg):
            loss, n, _ = self.loss(model, self.collate(split, ids.tolist()))
            total, count = total + loss.item(), count + n
        nll = total / max(count, 1)
        result = {"loss": nll, "ppl": math.exp(min(nll, 100.0)), "tokens": count}
        if cfg.eval_bleu:
            search = bleu_search_config(cfg.eval_bleu_args)
            result["bleu"] = self.bleu(model, split, vcfg, device, search)
        return result

    def bleu(
        self, model: torch.nn.Module, split: str, cfg: Batching | TrainConfig, device: torch.device,
        search: SearchConfig,
    ) -> float:  # fmt: skip
        """Corpus sacreBLEU of ``split`` decoded with ``search``."""
        from rnnkit.scoring import corpus_scores

        hyps, refs = [], []
        _, tgt = self.datasets(split)
        with get_reporter().progress(f"bleu {split}", total=len(tgt), lines=False) as bar:
            for ids, results in self.generate_split(model, split, cfg, search, device):
                for i, hypos in zip(ids, results, strict=True):
                    tokens = self.target_tokens(hypos[0].tokens) if hypos else []
                    hyps.append(self.detokenize(tokens))
                    refs.append(self.detokenize(self.tgt_dict.decode(tgt[i].tolist())))
                bar.update(len(ids))
        return corpus_scores(hyps, [refs], "bleu")[0].score

    # --- inference -------------------------------------------------------------------------
    def generate_split(
        self, model: torch.nn.Module, split: str, cfg: Batching, search: SearchConfig,
        device: torch.device, *, reference: bool = False,
    ) -> Iterator[tuple[list[int], list[list[Hypothesis]]]]:  # fmt: skip
        """Decode a binarized split batch by batch: (example ids, their hypotheses); with
        ``reference`` each sentence's one hypothesis is its reference, force-scored."""
        src, tgt = self.datasets(split)
        sizes = src.sizes.astype(np.int64)
        for ids in batch_by_size(sizes, cfg.batch_size, cfg.max_tokens):
            sources = [src[i].tolist() for i in ids]
            if reference:
                refs = [tgt[i].tolist() for i in ids]
                hypos = self.force_score(model, sources, refs, device, search.lenpen)
                yield ids.tolist(), [[h] for h in hypos]
            else:
                yield ids.tolist(), self.search(model, sources, search, device)

    @torch.inference_mode()
    def search(
        self, model: torch.nn.Module, sources: Sequence[Sequence[int]], search: SearchConfig,
        device: torch.device,
    ) -> list[list[Hypothesis]]:  # fmt: skip
        """Beam search / sampling over source id lists (each ending in ``</s>``, non-empty)."""
        model.eval()
        src, lengths = pad_rows(sources, self.src_dict.pad_index)
        d = self.tgt_dict
        return generate(model, src.to(device), lengths.to(device), search, d.eos_index,
                        d.pad_index, d.unk_index)  # fmt: skip

    def force_score(
        self, model: torch.nn.Module, sources: Sequence[Sequence[int]],
        targets: Sequence[Sequence[int]], device: torch.device, lenpen: float = 1.0,
    ) -> list[Hypothesis]:  # fmt: skip
        """The given target id lists scored as outputs of the source id lists (both ending in
        ``</s>``, non-empty): :func:`~rnnkit.generation.forced.force`, one hypothesis each."""
        model.eval()
        src, lengths = pad_rows(sources, self.src_dict.pad_index)
        d = self.tgt_dict
        return force(model, src.to(device), lengths.to(device), targets, d.eos_index,
                     d.pad_index, lenpen)  # fmt: skip

    def encode_source(self, line: str) -> list[int]:
        """A raw source line → its ids, ending in ``</s>``."""
        return self.src_dict.encode(self.tokenizer.encode(line), append_eos=True)

    def target_tokens(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        """Hypothesis ids → target tokens; copied ids past the vocabulary are source words."""
        v, out = len(self.tgt_dict), []
        skip = {self.tgt_dict.eos_index, self.tgt_dict.pad_index, self.tgt_dict.bos_index}
        for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
            if i >= v:
                out.append(self.src_dict[i - v])
            elif i not in skip:
                out.append(self.tgt_dict[i])
        return out

    def detokenize(self, tokens: list[str]) -> str:
        return self.tokenizer.decode(tokens)

    def translate_lines(
        self,
        model: torch.nn.Module,
        lines: Sequence[str],
        search: SearchConfig,
        device: torch.device,
        options: TranslateOptions | None = None,
    ) -> list[Translation]:
        """Translate raw lines (one batch): one :class:`Translation` per line, in order.

        Empty lines give no hypotheses; a line longer than ``max_source_positions`` tokens is
        truncated, or skipped (no hypotheses) with ``skip_invalid`` — with a warning naming the
        line (``options.first_line`` numbers the first one of ``lines``).
        """
        o = options or TranslateOptions()
        out = [Translation(self.tokenizer.encode(line)) for line in lines]
        todo = []
        for n, t in enumerate(out):
            where = f"{o.source_name}:{o.first_line + n}"
            if len(t.source) + 1 > o.max_source_positions:
                action = "skipped" if o.skip_invalid else "truncated"
                get_reporter().warning(
                    f"{where}: {len(t.source) + 1} source tokens exceed --max-source-positions "
                    f"{o.max_source_positions}; {action}"
                )
                if o.skip_invalid:
                    continue
                t.source = t.source[: o.max_source_positions - 1]
            if t.source:
                todo.append(n)
        if todo:
            ids = [self.src_dict.encode(out[n].source, append_eos=True) for n in todo]
            for n, hypos in zip(todo, self.search(model, ids, search, device), strict=True):
                out[n].hypotheses = hypos
                out[n].tokens = [self.hypothesis_tokens(h, out[n].source, o) for h in hypos]
        return out

    def hypothesis_tokens(
        self, hypo: Hypothesis, source: list[str], options: TranslateOptions
    ) -> list[str]:
        """The target tokens of ``hypo``, with ``--replace-unk`` applied through its alignment."""
        tokens = self.target_tokens(hypo.tokens)
        if options.replace_unk and hypo.alignment is not None:
            unk = self.tgt_dict[self.tgt_dict.unk_index]
            tokens = replace_unk(tokens, source, hypo.alignment.tolist(), options.align_dict, unk)
        return tokens
