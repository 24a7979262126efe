"""``rnnkit plot``: a save dir's ``train_log.jsonl`` read into curves (train, one per validation
split, by update and wall time), runs overlaid in one image; missing metrics warned about,
missing logs and damaged lines named."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rnnkit_cli.main
from rnnkit.errors import RnnkitError
from rnnkit.training.curves import collect, draw_curves, read_log, run_names
from rnnkit_cli.plot import app
from tests.helpers import run_main

PNG = b"\x89PNG\r\n\x1a\n"


def write_log(save_dir: Path, records: list[dict], tail: str = "") -> Path:
    save_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    (save_dir / "train_log.jsonl").write_text(text)
    return save_dir


def records(t0: float = 1000.0, wall: bool = False, bleu: bool = True) -> list[dict]:
    out = []
    for i, updates in enumerate((10, 20, 30)):
        w = {"wall": 5.0 * (i + 1)} if wall else {}
        out.append({"time": t0 + 10 * i, "event": "train", "epoch": 1, "updates": updates,
                    "loss": 3.0 - i, "ppl": 20.0 - i, "lr": 0.1, **w})  # fmt: skip
    for split, loss in (("valid", 2.5), ("test", 2.7)):
        extra = {"bleu": 11.0} if bleu else {}
        extra.update({"wall": 16.0} if wall else {})
        out.append({"time": t0 + 25, "event": "valid", "split": split, "epoch": 1, "updates": 30,
                    "loss": loss, "ppl": 12.0, **extra})  # fmt: skip
    out.append({"time": t0 + 26, "event": "train_epoch", "epoch": 1, "updates": 30, "loss": 1.5,
                "seconds": 26.0, "tokens": 100})  # fmt: skip
    return out


def test_series_by_update_and_wall_time(tmp_path):
    run = write_log(tmp_path / "run", records())
    series = {(s.metric, s.label): s for s in read_log(run, ["loss", "bleu"], "run")}
    assert set(series) == {("loss", "run train"), ("loss", "run valid"), ("loss", "run test"),
                           ("bleu", "run valid"), ("bleu", "run test")}  # fmt: skip
    train = series[("loss", "run train")]
    assert train.updates == [10, 20, 30] and train.values == [3.0, 2.0, 1.0]
    assert train.wall == [0.0, 10.0, 20.0]  # time less the first record's time
    assert series[("loss", "run test")].values == [2.7] and series[("loss", "run test")].wall == [
        25.0
    ]


def test_wall_field_is_used_when_present(tmp_path):
    run = write_log(tmp_path / "run", records(wall=True))
    train = next(s for s in read_log(run, ["loss"], "run") if s.kind == "train")
    assert train.wall == [5.0, 10.0, 15.0]


def test_train_epoch_records_when_a_run_logged_no_train_records(tmp_path):
    recs = [r for r in records() if r["event"] != "train"]
    run = write_log(tmp_path / "run", recs)
    train = {s.metric: s for s in read_log(run, ["loss", "ppl"], "run") if s.kind == "train"}
    assert train["loss"].values == [1.5] and train["ppl"].values == [pytest.approx(4.4817, 1e-4)]
    assert train["loss"].wall == [26.0]  # the first epoch's seconds count from its start


def test_a_resumed_run_replaces_the_updates_it_redid(tmp_path):
    redone = [{"time": 2000, "event": "train", "updates": 20, "loss": 9.0},
              {"time": 2010, "event": "train", "updates": 40, "loss": 8.0}]  # fmt: skip
    recs = records()[:3] + redone
    run = write_log(tmp_path / "run", recs)
    (train,) = read_log(run, ["loss"], "run")
    assert train.updates == [10, 20, 40] and train.values == [3.0, 9.0, 8.0]


def test_missing_metric_in_one_run_is_skipped_with_a_warning(tmp_path, capsys):
    a = write_log(tmp_path / "a", records())
    b = write_log(tmp_path / "b", records(bleu=False))
    series = collect([a, b], ["loss", "bleu"])
    assert {s.run for s in series if s.metric == "bleu"} == {"a"}
    assert f"{b / 'train_log.jsonl'}: no 'bleu' logged; skipped" in capsys.readouterr().err
    with pytest.raises(RnnkitError, match="no run logged nope"):
        collect([a, b], ["nope"])


def test_missing_log_and_damaged_line_are_named(tmp_path):
    with pytest.raises(
        RnnkitError, match=rf"^{tmp_path / 'none' / 'train_log.jsonl'}: no training log"
    ):
        collect([tmp_path / "none"], ["loss"])
    bad = write_log(tmp_path / "bad", records(), tail='{"time": 1, "event": "tra')
    with pytest.raises(RnnkitError, match=rf"^{bad / 'train_log.jsonl'}:7: damaged log line"):
        collect([bad], ["loss"])
    bad2 = write_log(tmp_path / "bad2", [{"time": 1, "event": "valid", "loss": 1.0}])
    with pytest.raises(RnnkitError, match=r":1: damaged log line \(a valid record without"):
        collect([bad2], ["loss"])


def test_legend_names_are_folder_names_with_parents_where_they_collide(tmp_path):
    assert run_names([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]
    x, y = tmp_path / "x" / "run", tmp_path / "y" / "run"
    assert run_names([x, y, tmp_path / "z"]) == ["x/run", "y/run", "z"]


def test_a_png_is_drawn_and_written_atomically(tmp_path):
    a = write_log(tmp_path / "a", records())
    b = write_log(tmp_path / "b", records(t0=50.0, wall=True))
    out = draw_curves(collect([a, b], ["loss", "ppl"]), ["loss", "ppl"], tmp_path / "c.png")
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c.png"]  # no temp file left
    with pytest.raises(RnnkitError, match=r"unknown image format 'xyz'"):
        draw_curves(collect([a], ["loss"]), ["loss"], tmp_path / "c.xyz")


def test_cli_plots_runs(tmp_path):
    a = write_log(tmp_path / "a", records())
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(app, [str(a), "--metric", "loss,bleu", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG)
    result = CliRunner().invoke(app, [str(tmp_path / "none"), "--output", str(out)])
    assert isinstance(result.exception, RnnkitError)


@pytest.mark.skipif(
    "plot" not in inspect.getsource(rnnkit_cli.main), reason="not yet in cli/main.py's table"
)
def test_rnnkit_plot_through_main(tmp_path):
    a = write_log(tmp_path / "a", records())
    run_main("plot", str(a), "--metric", "loss", "--output", str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes().startswith(PNG)
    bad = run_main("plot", str(tmp_path / "none"), check=False)
    assert bad.returncode == 2 and "no training log" in bad.stderr
