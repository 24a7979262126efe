"""Training logs (issue 13 item 7): ``--log-interval`` counts updates, ``--log-format json``,
``--log-file``, ``--tensorboard-logdir``, the parameter count at the start and ``wall`` time that
continues across resumes."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.reporting import Reporter, render_record, using_reporter
from rnnkit.tasks import load_task
from rnnkit.training.checkpoint import load_checkpoint
from rnnkit.training.config import TrainConfig
from rnnkit.training.logs import TENSORBOARD_MISSING, check_logging
from rnnkit.training.loop import build_run, fit
from tests.helpers import run_main
from tests.unit.test_training import make_char_data

TINY = ["--embed-dim", "8", "--hidden-size", "8", "--num-layers", "1"]
BASE = dict(batch_size=4, bptt=6, optimizer="adam", lr=0.01, seed=3)


def _run(tmp_path: Path, **train):
    data = tmp_path / "data"
    if not data.exists():
        make_char_data(data)
    cfg = resolve(TrainConfig, {**BASE, **train})
    model = {"embed-dim": 8, "hidden-size": 8, "num-layers": 1}
    return build_run(cfg, load_task(data), "rnn_lm", [model], tmp_path / "run")


def _records(save_dir: Path, event: str | None = None) -> list[dict]:
    lines = (save_dir / "train_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if event is None or r["event"] == event]


def _train_cli(tmp_path: Path, *args: str, check: bool = True):
    data = tmp_path / "data"
    if not data.exists():
        make_char_data(data)
    return run_main(
        "train", str(data), "--arch", "rnn_lm", "--save-dir", str(tmp_path / "run"), *TINY,
        "--batch-size", "4", "--bptt", "6", "--optimizer", "adam", "--threads", "1", *args,
        check=check,
    )  # fmt: skip


def test_log_interval_counts_updates(tmp_path):
    with using_reporter(Reporter(quiet=True)):
        progress = fit(_run(tmp_path, max_epoch=1, log_interval=3))
    train = _records(tmp_path / "run", "train")
    assert progress.updates >= 6
    assert [r["updates"] for r in train] == list(range(3, progress.updates + 1, 3))
    assert all({"loss", "ppl", "lr", "tokens_per_s", "wall"} <= r.keys() for r in train)
    fit(_run(tmp_path, max_epoch=2, log_interval=0))  # resumes; 0: no train records
    assert len(_records(tmp_path / "run", "train")) == len(train)


def test_json_log_format_and_log_file(tmp_path):
    log_file = tmp_path / "logs" / "train.log"
    log_file.parent.mkdir()
    log_file.write_text("earlier run\n")
    proc = _train_cli(tmp_path, "--max-epoch", "1", "--log-interval", "2",
                      "--log-format", "json", "--log-file", str(log_file))  # fmt: skip
    lines = [json.loads(x) for x in proc.stderr.splitlines() if x.strip()]  # every line is JSON
    events = [x["event"] for x in lines]
    assert "train" in events and "train_epoch" in events and "valid" in events
    info = [x["message"] for x in lines if x["event"] == "info"]
    assert any(m.startswith("model rnn_lm: ") and " parameters (" in m for m in info)
    train = next(x for x in lines if x["event"] == "train")
    assert train["updates"] == 2 and {"epoch", "loss", "ppl", "lr", "tokens_per_s"} <= set(train)
    assert train["wall"] >= 0
    written = log_file.read_text().splitlines()
    assert written[0] == "earlier run"  # appended
    assert [json.loads(x) for x in written[1:]] == lines


def test_simple_format_lines(tmp_path):
    proc = _train_cli(tmp_path, "--max-epoch", "1", "--log-interval", "2")
    assert "model rnn_lm: 712 parameters (712 trainable)\nRNNLanguageModel(" in proc.stderr
    lines = proc.stderr.splitlines()
    assert any(x.startswith("epoch 1 | update 2 | loss ") for x in lines)
    valid = next(x for x in lines if "| valid loss" in x)
    assert " | wall " in valid and valid.endswith("| best")


def test_render_record():
    fields = {"epoch": 2, "updates": 40, "split": "valid", "loss": 2.30258, "ppl": 10.0,
              "tokens": 99, "wall": 123.4, "best": True}  # fmt: skip
    line = "epoch 2 | update 40 | valid loss 2.3026 | ppl 10.00 | wall 2m03s | best"
    assert render_record("valid", fields) == line
    assert render_record("train", {"updates": 5, "lr": 3e-5}) == "update 5 | lr 3e-05"
    assert (
        render_record("train_epoch", {"loss": 1.5, "wall": 4.04}) == "train loss 1.5000 | wall 4.0s"
    )


def test_unwritable_log_file_is_one_line_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = _train_cli(tmp_path, "--max-epoch", "1", "--log-file", str(blocker / "log"),
                      check=False)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"rnnkit: error: --log-file {blocker / 'log'}: ")
    assert len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_missing_tensorboard_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    cfg = resolve(TrainConfig, {"tensorboard_logdir": str(tmp_path / "tb")})
    with pytest.raises(RnnkitError) as e:
        check_logging(cfg)
    assert str(e.value) == TENSORBOARD_MISSING
    assert "pip install rnnkit[tensorboard]" in TENSORBOARD_MISSING
    proc = _train_cli(tmp_path, "--tensorboard-logdir", str(tmp_path / "tb"), check=False)
    assert proc.returncode == 2 and proc.stderr == f"rnnkit: error: {TENSORBOARD_MISSING}\n"


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with using_reporter(Reporter(quiet=True)):
        fit(_run(tmp_path, max_epoch=1, log_interval=2, tensorboard_logdir=str(tmp_path / "tb")))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/ppl", "train/lr", "train/tokens_per_s", "valid/loss"} <= tags
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == [r["updates"] for r in _records(tmp_path / "run", "train")]


def test_wall_time_grows_and_continues_after_resume(tmp_path):
    with using_reporter(Reporter(quiet=True)):
        fit(_run(tmp_path, max_epoch=1, log_interval=1))
        first = _records(tmp_path / "run")
        saved = load_checkpoint(tmp_path / "run" / "checkpoint_last.pt")["progress"]["wall"]
        fit(_run(tmp_path, max_epoch=2, log_interval=1))
    walls = [r["wall"] for r in _records(tmp_path / "run")]
    assert walls == sorted(walls) and walls[0] > 0
    assert saved >= first[-1]["wall"] - 1e-3  # records round to milliseconds
    assert all(w >= saved for w in walls[len(first) :])  # the resumed run continues the count
    later = load_checkpoint(tmp_path / "run" / "checkpoint_last.pt")["progress"]["wall"]
    assert later >= walls[-1] - 1e-3 and walls[-1] > saved


def test_json_reporter_lines_and_file():
    file = io.StringIO()
    reporter = Reporter().logging_to("json", file)
    reporter.info("hello")
    reporter.warning("careful")
    reporter.table("t", ["a", "b"], [[1, 2.5]])
    got = [json.loads(x) for x in file.getvalue().splitlines()]
    assert got == [
        {"event": "info", "message": "hello"},
        {"event": "warning", "message": "careful"},
        {"event": "table", "title": "t", "columns": ["a", "b"], "rows": [[1, 2.5]]},
    ]
