"""What tagging and classification share: sentence data, its batches, dictionaries, checkpoints.

:class:`SentenceTask` reads what ``rnnkit preprocess --task tagging|classification`` writes from a
folder a split (``seq.in`` tokens, ``seq.out`` one tag per token, ``label`` one label per line):
``{split}.in`` (no ``</s>``: token i and tag i stay aligned), ``{split}.tags`` and
``{split}.label``, with a dictionary each. Training batches group sentences of similar length
(:mod:`rnnkit.data.buckets`) in an order drawn from one seed per epoch, and resume mid-epoch
exactly. Decoding (:func:`decode`) never outputs a special symbol (:func:`predictable`). A
model with character features reads raw lines' own characters (:meth:`SentenceTask.run_lines`),
so a word unseen in training gets features from its spelling, not those of ``<unk>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.config import resolve
from rnnkit.data import buckets
from rnnkit.data.binarized import data_paths
from rnnkit.data.corpus import Stream
from rnnkit.data.sentences import SentenceBatch, SentenceData
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import MODEL_REGISTRY, resolve_arch
from rnnkit.modules.charfeatures import CharFeatures
from rnnkit.modules.crf import CRF
from rnnkit.tasks.base import (
    Batching,
    DictionarySpec,
    Shard,
    TaskBase,
    reject_pair_options,
    tokenizer_name,
)  # fmt: skip
from rnnkit.tasks.lines import LineLimit, token_batches
from rnnkit.tokenizers import Tokenizer, load_tokenizer, tokenizer_from_state
from rnnkit.training import preflight
from rnnkit.training.checkpoint import load_weights

if TYPE_CHECKING:
    from rnnkit.data.preprocess import PreprocessConfig
    from rnnkit.training.config import TrainConfig

FOLDER_FILES = {"in": "seq.in", "tags": "seq.out", "label": "label"}  # a split folder's files


def predictable(d: Dictionary) -> Tensor:
    """(V,) bool: the symbols decoding may output (not a special or padding ``madeupword``)."""
    return torch.tensor(
        [i >= d.nspecial and not s.startswith("madeupword") for i, s in enumerate(d.symbols)]
    )


def model_config(model: torch.nn.Module) -> Any:
    """The config of a model, also through a DistributedDataParallel (``.module``) wrapper."""
    return getattr(model, "module", model).cfg


def model_crf(model: torch.nn.Module) -> CRF | None:
    """The model's CRF over tags (``rnn_tagger --crf true``), or None (also through DDP)."""
    crf = getattr(getattr(model, "module", model), "crf", None)  # plugin models may lack it
    return crf if isinstance(crf, CRF) else None


def model_chars(model: torch.nn.Module) -> CharFeatures | None:
    """The model's character features (``--char-features``), or None (also through DDP)."""
    chars = getattr(getattr(model, "module", model), "char_features", None)
    return chars if isinstance(chars, CharFeatures) else None


def decode(logits: Tensor, allowed: Tensor) -> Tensor:
    """Arg-max over ``allowed`` symbols: logits (..., V) → ids (...)."""
    return logits.masked_fill(~allowed.to(logits.device), float("-inf")).argmax(-1)


class SentenceTask(TaskBase):
    """What tagging and classification share: dictionaries, data, batches, checkpoints."""

    name = ""
    has_tags = True

    # --- preprocess: a folder a split (seq.in, seq.out, label), one dictionary a stream -----
    @classmethod
    def check_preprocess(cls, cfg: PreprocessConfig) -> None:
        reject_pair_options(cfg)
        if cfg.tgtdict and not cls.has_tags:
            raise RnnkitError(
                f"--tgtdict is for translation and tagging; {cls.name} reuses --srcdict"
            )

    @classmethod
    def streams(cls, cfg: PreprocessConfig) -> tuple[Stream, ...]:
        """``in`` (no ``</s>``: token i and tag i stay aligned), ``tags`` (tagging), and
        ``label`` (classification; tagging when the first split's folder has a label file)."""
        first = cfg.trainpref or (cfg.validpref + cfg.testpref)[0]
        labels = not cls.has_tags or (Path(first) / FOLDER_FILES["label"]).is_file()
        streams = [Stream("in", "text", "in", "dict.in.txt", False)]
        if cls.has_tags:
            streams.append(Stream("tags", "tags", "tags", "dict.tags.txt", False))
        if labels:
            streams.append(Stream("label", "label", "label", "dict.label.txt", False))
        return tuple(streams)

    @classmethod
    def input_files(cls, prefix: str, streams: Sequence[Stream]) -> tuple[Path, ...]:
        if not Path(prefix).is_dir():
            files = "seq.in, seq.out (and label)" if cls.has_tags else "seq.in and label"
            raise RnnkitError(f"{prefix}: expected a folder with {files} for --task {cls.name}")
        return tuple(Path(prefix) / FOLDER_FILES[s.name] for s in streams)

    @classmethod
    def dictionary_specs(
        cls, cfg: PreprocessConfig, streams: Sequence[Stream]
    ) -> list[DictionarySpec]:
        """Tags and labels keep every symbol, so a tag unseen in train becomes ``<unk>``."""
        threshold = cfg.threshold if cfg.thresholdsrc is None else cfg.thresholdsrc
        nwords = cfg.nwords if cfg.nwordssrc is None else cfg.nwordssrc
        rest = [DictionarySpec(cfg.tgtdict)] + [DictionarySpec(None)] * (len(streams) - 2)
        return [DictionarySpec(cfg.srcdict, threshold, nwords)] + rest

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
        d, name = Path(data_dir), tokenizer_name(meta)
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
        cfg: TrainConfig,
        model: torch.nn.Module,
        device: torch.device,
        generator: torch.Generator,
        resume: Mapping[str, Any] | None = None,
        *,
        shard: Shard = (0, 1),
    ) -> buckets.BatchIterator:
        """This epoch's batches of ``train`` (a fresh seed from ``generator`` unless resuming
        ``resume``, a ``state_dict``): worker ``shard = (rank, world)``'s share of one list,
        from the resumed global position on, under any world size (``BatchIterator.for_epoch``)."""
        data = self.data("train")
        return buckets.BatchIterator.for_epoch(
            lambda seed: buckets.batch_by_size(data.sizes, cfg.batch_size, cfg.max_tokens, seed),
            data.collate, generator, resume, shard,
        )  # fmt: skip

    def eval_batches(self, split: str, cfg: TrainConfig | Batching) -> Iterator[SentenceBatch]:
        """Every sentence of ``split`` once, in length-sorted batches of the validation size."""
        data, size = self.data(split), cfg.valid_batch_size or cfg.batch_size
        for indices in buckets.batch_by_size(data.sizes, size, cfg.max_tokens):
            yield data.collate(indices.tolist())

    def check_split(self, split: str, cfg: TrainConfig, *, train: bool, world: int = 1) -> None:
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
        chars = model_chars(model)
        for indices in token_batches(data.sizes, size):
            batch, rows = data.collate(indices).to(device), [kept[j] for j in indices]
            if chars is None:
                yield rows, model(batch.tokens, batch.lengths)
            else:  # the raw tokens' characters: an unseen word is read, not taken as <unk>
                spelled = chars.vocab.encode_sentences([t for _, t in rows]).to(device)
                yield rows, model(batch.tokens, batch.lengths, chars=spelled)

    def label_result(self, logits: Tensor) -> dict[str, Any]:
        """``{"label": str, "prob": float}`` from one sentence's label logits (C,)."""
        assert self.label_dictionary is not None and self.label_mask is not None
        i = int(decode(logits, self.label_mask))
        return {"label": self.label_dictionary[i], "prob": logits.softmax(-1)[i].item()}
