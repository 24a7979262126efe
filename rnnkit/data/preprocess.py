"""``rnnkit preprocess``: raw text → dictionaries and memory-mapped datasets in a data directory.

:func:`preprocess` checks every input first (files, parallel line counts), builds the whole data
directory in a temporary folder beside ``--destdir`` and renames it into place only at the end,
so a failure leaves nothing half-written. It trains a SentencePiece model if asked (on at most
``spm_sample_lines`` lines drawn at random, so its memory is bounded on any corpus), counts
tokens of the train split into dictionaries (fairseq ``dict.txt``), binarizes every split in
line chunks (see :mod:`rnnkit.data.binarize`), and writes ``preprocess.json``: the task, the
tokenizer, every option, per-split counts and ``<unk>`` rates, and the sha256 of each input.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rnnkit.config import opt, to_dict
from rnnkit.data.binarize import Job, Runner, StreamStats, binarize_chunk, count_chunk, merge_parts
from rnnkit.data.corpus import (
    DEFAULT_TASK,
    Split,
    Stream,
    open_split,
    output_prefix,
    plan_chunks,
    split_names,
)
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.io import WriteError, apply_umask, atomic_write, writing
from rnnkit.reporting import get_reporter
from rnnkit.tokenizers import TOKENIZER_REGISTRY, SentencePieceTokenizer

if TYPE_CHECKING:
    from rnnkit.tasks.base import DictionarySpec, Task

MANIFEST = "preprocess.json"
# sentencepiece's memory grows with the lines it trains on: about 1.45 KiB a line of 54 bytes
# (unigram, 8000 pieces; benchmarks/RESULTS.md): 1.7 GiB peak for 1M lines, and 10M such lines
# (the first suggestion) would need about 14 GiB. 1M lines keeps preprocess within a
# few GB on any corpus and is sentencepiece's own recommended range for a good vocabulary.
SPM_SAMPLE_LINES = 1_000_000


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of ``rnnkit preprocess`` (the command line spells them ``--kebab-case``)."""

    task: str = opt(DEFAULT_TASK, "a registered task: lm, translation, tagging, classification, …")
    trainpref: str | None = opt(None, "train prefix (a folder for tagging and classification)")
    validpref: tuple[str, ...] = opt((), "valid prefixes, comma-separated: valid, valid1, …")
    testpref: tuple[str, ...] = opt((), "test prefixes, comma-separated: test, test1, …")
    source_lang: str | None = opt(None, "source language suffix (translation)")
    target_lang: str | None = opt(None, "target language suffix (translation)")
    destdir: str = opt("data-bin", "output folder; refused if it exists unless force")
    tokenizer: str = opt("space", "registered tokenizer: space, char, sentencepiece, …")
    spm_vocab_size: int = opt(8000, "sentencepiece vocabulary size")
    spm_model_type: Literal["unigram", "bpe"] = opt("unigram", "sentencepiece model type")
    spm_sample_lines: int = opt(
        SPM_SAMPLE_LINES,
        "train sentencepiece on this many train lines drawn at random, to bound memory (0: all)",
    )
    threshold: int = opt(0, "drop words seen fewer times in train (lm; default for src/tgt)")
    thresholdsrc: int | None = opt(None, "threshold of the source dictionary")
    thresholdtgt: int | None = opt(None, "threshold of the target dictionary")
    nwords: int = opt(-1, "keep this many symbols, specials included (-1: all)")
    nwordssrc: int | None = opt(None, "nwords of the source dictionary")
    nwordstgt: int | None = opt(None, "nwords of the target dictionary")
    padding_factor: int = opt(8, "pad dictionary sizes to a multiple of this")
    joined_dictionary: bool = opt(False, "one dictionary for source and target (translation)")
    srcdict: str | None = opt(None, "reuse this dict.txt for the source (lm: the text)")
    tgtdict: str | None = opt(None, "reuse this dict.txt for the target (tags for tagging)")
    workers: int = opt(1, "processes; the output is byte-identical for any number")
    force: bool = opt(False, "replace an existing destdir")
    keep_empty: bool | None = opt(
        None,
        "keep empty train lines (a lone </s>), or drop them; default: keep for lm, as fairseq "
        "does (a blank line is text), drop for the sentence tasks",
    )
    encoding_errors: Literal["strict", "replace"] = opt(
        "strict", "on invalid UTF-8: fail or U+FFFD"
    )


def task_class(cfg: PreprocessConfig) -> type[Task]:
    """The registered task ``cfg.task`` (an unknown name lists the valid ones)."""
    from rnnkit.tasks import TASK_REGISTRY  # the tasks import the data layer, not the reverse

    return TASK_REGISTRY.get(cfg.task)


def check_config(cfg: PreprocessConfig) -> None:
    """Reject option combinations that make no sense, before touching any file."""
    task = task_class(cfg)
    task.check_preprocess(cfg)
    if not (cfg.trainpref or cfg.validpref or cfg.testpref):
        raise RnnkitError("nothing to do: give --trainpref, --validpref or --testpref")
    if cfg.workers < 1 or cfg.padding_factor < 1 or cfg.spm_vocab_size < 1:
        raise RnnkitError("--workers, --padding-factor and --spm-vocab-size must be at least 1")
    if cfg.spm_sample_lines < 0:
        raise RnnkitError(
            f"--spm-sample-lines must be 0 (all lines) or more, got {cfg.spm_sample_lines}"
        )
    TOKENIZER_REGISTRY.get(cfg.tokenizer)  # an unknown name lists the valid ones
    if cfg.tokenizer != "sentencepiece" and cfg.spm_sample_lines != SPM_SAMPLE_LINES:
        # An error, not a warning: a silently ignored bound would let a user believe it holds.
        raise RnnkitError("--spm-sample-lines is for --tokenizer sentencepiece")
    if cfg.tokenizer == "sentencepiece":
        if any(s.kind == "tags" for s in task.streams(cfg)):
            raise RnnkitError(
                f"--task {cfg.task} needs one tag per token; sentencepiece splits tokens"
            )
        if not cfg.trainpref:
            raise RnnkitError(
                "--tokenizer sentencepiece trains on the train split: give --trainpref"
            )


def task_streams(cfg: PreprocessConfig) -> tuple[Stream, ...]:
    """The task's line-parallel input streams (``Task.streams``)."""
    return task_class(cfg).streams(cfg)


def open_splits(cfg: PreprocessConfig, streams: tuple[Stream, ...]) -> list[Split]:
    """Every split with its files checked (exist, readable, equal line counts)."""
    named = [("train", cfg.trainpref)] if cfg.trainpref else []
    for kind, prefixes in (("valid", cfg.validpref), ("test", cfg.testpref)):
        named += zip(split_names(kind, list(prefixes)), prefixes, strict=True)
    task = task_class(cfg)
    splits = [open_split(name, task.input_files(prefix, streams)) for name, prefix in named]
    for split in splits:
        if split.is_train and split.nlines == 0:
            raise RnnkitError(f"{split.paths[0]}: the train file is empty")
    return splits


@contextlib.contextmanager
def building(destdir: Path, force: bool) -> Iterator[Path]:
    """A temporary folder beside ``destdir`` that replaces it if the block succeeds.

    An existing ``destdir`` is refused unless ``force``; on any error the folder is removed, and
    a failed write (full disk, ``ulimit -f``) names its file under ``destdir``, where the user
    looks, not under the temporary folder.
    """
    if destdir.exists() and not force:
        raise RnnkitError(f"{destdir}: already exists (pass --force to replace it)")
    if destdir.exists() and not destdir.is_dir():
        raise RnnkitError(f"{destdir}: exists and is not a folder")
    with writing(destdir):
        destdir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{destdir.name}.tmp-", dir=destdir.parent))
    try:
        apply_umask(tmp, 0o777)
        yield tmp
        old = None
        if destdir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{destdir.name}.old-", dir=destdir.parent))
            destdir.replace(old / destdir.name)
        tmp.rename(destdir)
        if old is not None:
            shutil.rmtree(old)
    except WriteError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise e.moved(tmp, destdir) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def stream_dictionary_options(
    cfg: PreprocessConfig, streams: tuple[Stream, ...]
) -> list[DictionarySpec]:
    """How each stream's dictionary is made (``Task.dictionary_specs``)."""
    return task_class(cfg).dictionary_specs(cfg, streams)


def keep_empty(cfg: PreprocessConfig) -> bool:
    """Whether empty train lines are kept: ``--keep-empty/--drop-empty``, else the task's rule."""
    if cfg.keep_empty is not None:
        return cfg.keep_empty
    return bool(getattr(task_class(cfg), "keep_empty_lines", False))  # protocol-only plugins


def make_jobs(
    cfg: PreprocessConfig,
    split: Split,
    streams: tuple[Stream, ...],
    tmp: Path,
    dictionaries: tuple[Dictionary, ...] | None = None,
) -> list[Job]:
    """One job per chunk of ``split`` (``cfg.workers`` chunks)."""
    return [
        Job(
            c,
            streams,
            cfg.tokenizer,
            str(tmp),
            cfg.encoding_errors,
            str(tmp),
            dictionaries,
            keep_empty(cfg),
        )
        for c in plan_chunks(split, cfg.workers)
    ]


def build_dictionaries(
    cfg: PreprocessConfig,
    streams: tuple[Stream, ...],
    train: Split | None,
    tmp: Path,
    runner: Runner,
    others: Sequence[Split] = (),
) -> tuple[Dictionary, ...]:
    """Reuse ``--srcdict/--tgtdict`` or count the train split (and ``others``, the other
    splits, for a stream whose :class:`~rnnkit.tasks.base.DictionarySpec` says
    ``every_split``); save each ``dict.*.txt``."""
    options = stream_dictionary_options(cfg, streams)
    loaded = {o.reuse: Dictionary.load(o.reuse) for o in options if o.reuse}
    counters = [Counter() for _ in streams]
    if any(o.reuse is None for o in options):
        if train is None:
            raise RnnkitError(
                "building a dictionary needs --trainpref (or reuse one with --srcdict)"
            )
        check_train_kept(train, count_split(cfg, train, streams, tmp, runner, counters))
    if any(o.every_split and o.reuse is None for o in options):
        for split in others:
            found = [Counter() for _ in streams]
            count_split(cfg, split, streams, tmp, runner, found)
            for o, total, counter in zip(options, counters, found, strict=True):
                if o.every_split:
                    total.update(counter)
    if cfg.joined_dictionary:
        counters = [counters[0] + counters[1]] * 2
    dictionaries = []
    for o, counter in zip(options, counters, strict=True):
        if o.reuse:
            dictionaries.append(loaded[o.reuse])
            continue
        d = Dictionary()
        d.update(counter)
        d.finalize(o.threshold, o.nwords, cfg.padding_factor)
        dictionaries.append(d)
    for s, d in zip(streams, dictionaries, strict=True):
        d.save(tmp / s.dictionary)
    return tuple(dictionaries)


def count_split(
    cfg: PreprocessConfig,
    split: Split,
    streams: tuple[Stream, ...],
    tmp: Path,
    runner: Runner,
    counters: list[Counter],
) -> int:
    """Add the symbols of every stream of ``split`` to ``counters``; return the kept lines."""
    kept = 0
    for result in runner.map(count_chunk, make_jobs(cfg, split, streams, tmp)):
        kept += result.kept
        for total, counter in zip(counters, result.counters, strict=True):
            total.update(counter)
    return kept


def check_train_kept(train: Split, kept: int) -> None:
    """Refuse a train split whose every line was empty (and so dropped)."""
    if kept == 0:
        raise RnnkitError(f"{train.paths[0]}: the train file has only empty lines")


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def binarize_split(
    cfg: PreprocessConfig,
    split: Split,
    streams: tuple[Stream, ...],
    dictionaries: tuple[Dictionary, ...],
    tmp: Path,
    runner: Runner,
) -> dict[str, Any]:
    """Binarize every stream of ``split`` into ``tmp``; return its counts for the manifest."""
    jobs = make_jobs(cfg, split, streams, tmp, dictionaries)
    kept = dropped = 0
    stats = [StreamStats() for _ in streams]
    for result in runner.map(binarize_chunk, jobs):
        kept += result.kept
        dropped += result.dropped
        for total, st in zip(stats, result.stats, strict=True):
            total.add(st)
    if split.is_train:
        check_train_kept(split, kept)
    outputs = {}
    for s, d, st in zip(streams, dictionaries, stats, strict=True):
        merge_parts(jobs, s, d, tmp / output_prefix(split.name, s))
        rate = st.unk / st.tokens if st.tokens else 0.0
        outputs[output_prefix(split.name, s)] = {**vars(st), "unk_rate": round(rate, 6)}
    return {
        "lines": split.nlines,
        "sequences": kept,
        "dropped_empty": dropped,
        "inputs": {str(p): sha256(p) for p in split.paths},
        "outputs": outputs,
    }


def tokenizer_info(cfg: PreprocessConfig, train_lines: int) -> dict[str, Any]:
    """The tokenizer as recorded in the manifest (``sample_lines`` only if a sample was drawn)."""
    if cfg.tokenizer != "sentencepiece":
        return {"name": cfg.tokenizer}
    info: dict[str, Any] = {
        "name": cfg.tokenizer,
        "model": SentencePieceTokenizer.MODEL_FILE,
        "vocab_size": cfg.spm_vocab_size,
        "model_type": cfg.spm_model_type,
    }
    if 0 < cfg.spm_sample_lines < train_lines:
        info["sample_lines"] = cfg.spm_sample_lines
    return info


def preprocess(cfg: PreprocessConfig) -> dict[str, Any]:
    """Build ``cfg.destdir``; return the manifest also written to ``preprocess.json``."""
    check_config(cfg)
    streams = task_streams(cfg)
    splits = open_splits(cfg, streams)
    train = next((s for s in splits if s.is_train), None)
    reporter = get_reporter()
    text, text_lines = train_text(train, streams)
    with building(Path(cfg.destdir), cfg.force) as tmp, Runner(cfg.workers) as runner:
        if cfg.tokenizer == "sentencepiece":
            train_sentencepiece(cfg, text, text_lines, tmp)
        others = [s for s in splits if not s.is_train]
        dictionaries = build_dictionaries(cfg, streams, train, tmp, runner, others)
        manifest: dict[str, Any] = {
            "task": cfg.task,
            "tokenizer": tokenizer_info(cfg, text_lines),
            # tuples as JSON lists; keep_empty as applied (the task's default when not given)
            "options": json.loads(json.dumps({**to_dict(cfg), "keep_empty": keep_empty(cfg)})),
            "dictionaries": {
                s.dictionary: len(d) for s, d in zip(streams, dictionaries, strict=True)
            },
            "splits": {},
        }
        for split in splits:
            reporter.info(f"binarizing {split.name} ({split.nlines} lines)")
            stats = binarize_split(cfg, split, streams, dictionaries, tmp, runner)
            manifest["splits"][split.name] = stats
        with atomic_write(tmp / MANIFEST) as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
    report_summary(cfg, manifest)
    return manifest


def train_text(train: Split | None, streams: tuple[Stream, ...]) -> tuple[list[Path], int]:
    """The train split's text files (sentencepiece trains on them) and their lines in all."""
    if train is None:
        return [], 0
    text = [p for p, s in zip(train.paths, streams, strict=True) if s.kind == "text"]
    return text, len(text) * train.nlines


def train_sentencepiece(cfg: PreprocessConfig, text: list[Path], nlines: int, tmp: Path) -> None:
    """Train ``tmp/spm.model`` on the train split's text files (``nlines`` lines in all)."""
    sample = cfg.spm_sample_lines
    lines = f"{sample:,} of {nlines:,} lines" if 0 < sample < nlines else f"{nlines:,} lines"
    get_reporter().info(
        f"training sentencepiece ({cfg.spm_model_type}, {cfg.spm_vocab_size}) on {lines}"
    )
    SentencePieceTokenizer.train(
        text, tmp, cfg.spm_vocab_size, cfg.spm_model_type, sample_lines=sample, nlines=nlines
    )


def report_summary(cfg: PreprocessConfig, manifest: dict[str, Any]) -> None:
    """A short table of every output file on the reporter (stderr)."""
    rows = []
    for name, split in manifest["splits"].items():
        for prefix, st in split["outputs"].items():
            dropped = split["dropped_empty"] if name == "train" else "-"
            rows.append(
                (prefix, st["sequences"], st["tokens"], dropped, f"{100 * st['unk_rate']:.2f}%")
            )
    sizes = ", ".join(f"{k} {v}" for k, v in manifest["dictionaries"].items())
    get_reporter().table(
        f"{cfg.destdir} ({cfg.task}, {cfg.tokenizer}; {sizes})",
        ("output", "sequences", "tokens", "empty dropped", "<unk>"),
        rows,
    )
