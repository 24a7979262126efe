"""Resources are errors, not tracebacks: a full disk in every writer, and checkpoint files that
are not rnnkit's, each give one line naming the file (and leave nothing half-written)."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.data.binarized import DatasetWriter
from rnnkit.errors import RnnkitError
from rnnkit.io import WriteError, atomic_write
from rnnkit.training import run as run_module
from rnnkit.training.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.training.loop import MetricsLog
from rnnkit.training.run import checkpoint_state
from tests.unit.test_training import make_run

NO_SPACE = "no space left on device"


class FullDisk(io.FileIO):
    """A file on a disk with room for ``room`` bytes: the write that reaches it is short, the
    next one fails with ENOSPC, as a real full disk does."""

    room = 1000

    def write(self, data) -> int:
        left = self.room - self.tell()
        if left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(memoryview(data)[:left])


def full_disk_fdopen(room: int):
    """An ``os.fdopen`` whose files fill up after ``room`` bytes."""

    def fdopen(fd: int, mode: str = "r", encoding: str | None = None, **_):
        raw = FullDisk(fd, "w")
        raw.room = room
        buffered = io.BufferedWriter(raw)
        return buffered if "b" in mode else io.TextIOWrapper(buffered, encoding=encoding)

    return fdopen


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("room", [0, 10, 5000])
def test_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_one(
    tmp_path, monkeypatch, room
):
    target = tmp_path / "dict.txt"
    target.write_text("old\n")
    monkeypatch.setattr(os, "fdopen", full_disk_fdopen(room))
    with pytest.raises(WriteError) as e, atomic_write(target) as f:
        for i in range(2000):
            f.write(f"word{i} 1\n")
    assert str(e.value) == f"{target}: {NO_SPACE}"
    assert target.read_text() == "old\n" and leftovers(tmp_path) == []


def test_atomic_write_fsync_failure_is_the_same_one_line(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(RnnkitError, match="x.json: disk quota exceeded$"):
        with atomic_write(tmp_path / "x.json") as f:
            f.write("{}")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A real checkpoint of a tiny lm (no training needed)."""
    root = tmp_path_factory.mktemp("ckpt")
    run = make_run(root)
    path = root / "good.pt"
    save_checkpoint(checkpoint_state(run), path)
    run.close()
    return path


def test_checkpoint_write_on_a_full_disk_leaves_the_old_checkpoint(good, tmp_path, monkeypatch):
    target = tmp_path / "checkpoint_last.pt"
    target.write_bytes(good.read_bytes())
    state = load_checkpoint(good)
    monkeypatch.setattr(os, "fdopen", full_disk_fdopen(3000))  # torch.save's writes fill it
    with pytest.raises(WriteError) as e:
        save_checkpoint(state, target)
    assert str(e.value) == f"{target}: {NO_SPACE}"
    assert target.read_bytes() == good.read_bytes() and leftovers(tmp_path) == []


def test_save_says_which_checkpoint_is_intact(tmp_path, monkeypatch):
    run = make_run(tmp_path, no_epoch_checkpoints=True)
    run.progress.updates = 40
    run_module.save(run, None, epoch_end=False, is_best=False)
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the n-th write of the next save fails
        calls.append(fd)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run.progress.updates, fail_at = 50, 2  # checkpoint_last.pt written, checkpoint_best.pt not
    with pytest.raises(RnnkitError) as e:
        run_module.save(run, None, epoch_end=False, is_best=True)
    best = run.save_dir / "checkpoint_best.pt"
    assert str(e.value) == f"{best}: {NO_SPACE}; checkpoint_last.pt (update 50) is intact"
    calls.clear()
    run.progress.updates, fail_at = 60, 1  # checkpoint_last.pt itself fails
    with pytest.raises(RnnkitError) as e:
        run_module.save(run, None, epoch_end=False, is_best=False)
    last = run.save_dir / "checkpoint_last.pt"
    assert str(e.value) == f"{last}: {NO_SPACE}; checkpoint_last.pt (update 50) is intact"
    assert load_checkpoint(last)["progress"]["updates"] == 50 and run.saved_updates == 50
    assert leftovers(run.save_dir) == [] and not best.exists()
    run.close()


class HalfFull(io.FileIO):
    """Takes 5 bytes of a write, then the disk is full."""

    def write(self, data) -> int:
        if getattr(self, "used", False):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.used = True
        return super().write(memoryview(data)[:5])


def test_train_log_on_a_full_disk_keeps_whole_lines(tmp_path, monkeypatch):
    path = tmp_path / "train_log.jsonl"
    log = MetricsLog(path)
    log.write(event="valid", loss=1.0)
    before = path.read_bytes()
    monkeypatch.setattr(
        "rnnkit.training.loop.open", lambda p, mode, **_: HalfFull(p, "a"), raising=False
    )
    with pytest.raises(WriteError, match=f"train_log.jsonl: {NO_SPACE}$"):
        log.write(event="valid", loss=0.5)
    assert path.read_bytes() == before and json.loads(before)["loss"] == 1.0


def test_dataset_writer_on_a_full_disk_names_the_bin(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "rnnkit.data.binarized.open", lambda p, mode: HalfFull(p, "w"), raising=False
    )
    w = DatasetWriter(tmp_path / "train.bin")
    with pytest.raises(WriteError, match=f"train.bin: {NO_SPACE}$"):
        for _ in range(10):
            w.add([1, 2, 3])


class Thing:
    """Not plain data: a weights-only load must refuse it."""


class Calls:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def bad_checkpoints(good: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """Every kind of file that is not a usable checkpoint, with the message each must give."""
    raw = good.read_bytes()
    state = torch.load(good, weights_only=True)
    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, expected: str, data: bytes | None = None, obj=None) -> None:
        path = root / f"{name}.pt"
        if data is not None:
            path.write_bytes(data)
        else:
            torch.save(obj, path)
        files[name] = (path, f"{path}: {expected}")

    add("random", "not an rnnkit checkpoint", data=bytes(range(256)) * 8)
    add("empty", "not an rnnkit checkpoint (the file is empty)", data=b"")
    add("foreign", "not an rnnkit checkpoint", obj={"weights": torch.zeros(2)})
    add("code", "unsafe content refused", data=pickle.dumps(Calls()))
    add("class", f"unsafe content refused: it holds a {__name__}.Thing object", obj={"x": Thing()})
    add("truncated", "truncated checkpoint", data=raw[: len(raw) // 2])
    for key in ("model_state", "model_config"):
        add(
            f"no_{key}",
            f"incomplete rnnkit checkpoint: it has no {key!r} entry",
            obj={k: v for k, v in state.items() if k != key},
        )
    weights = dict(state["model_state"])
    right = tuple(weights["embed.weight"].shape)
    weights["embed.weight"] = torch.zeros(3, 3)
    add(
        "shape",
        f"incompatible with its config: tensor 'embed.weight' has shape (3, 3), its "
        f"model config gives {right}",
        obj={**state, "model_state": weights},
    )
    return files


def test_every_bad_checkpoint_is_one_line_naming_the_file(good, tmp_path):
    for name, (path, expected) in bad_checkpoints(good, tmp_path).items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's pickle warning must not reach the user
            with pytest.raises(RnnkitError) as e:
                rnnkit.load(path, device="cpu")
        message = str(e.value)
        assert message.startswith(expected), (name, message)
        assert "\n" not in message and "Weights only" not in message, name


def test_a_directory_as_checkpoint_says_which_file_to_give(tmp_path):
    with pytest.raises(RnnkitError) as e:
        rnnkit.load(tmp_path)
    expected = f"{tmp_path}: is a directory; give a checkpoint file such as "
    assert str(e.value) == expected + str(tmp_path / "checkpoint_best.pt")


def test_resume_from_a_bad_checkpoint_names_it(good, tmp_path):
    (tmp_path / "bad").mkdir()
    for name, (path, expected) in bad_checkpoints(good, tmp_path / "bad").items():
        last = tmp_path / name / "checkpoint_last.pt"
        last.parent.mkdir()
        last.write_bytes(path.read_bytes())
        with pytest.raises(RnnkitError) as e:
            make_run(tmp_path, save=name)
        assert str(e.value).startswith(expected.replace(str(path), str(last))), str(e.value)
