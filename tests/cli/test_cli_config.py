"""Configuration that ``--help`` shows: ``rnnkit train``'s options in sections, the model's fields
as real options after ``--arch``, task options only where they apply, suggestions from all of
them, and ``rnnkit models`` listing every registry in columns."""

from __future__ import annotations

import dataclasses
import re
import sys

import pytest
from typer.testing import CliRunner

import rnnkit_cli.train as train_cli
from rnnkit.models import MODEL_REGISTRY, register_model
from rnnkit.modules.cells import CELL
from rnnkit.tasks import TASK_REGISTRY
from rnnkit.tokenizers import TOKENIZER_REGISTRY
from rnnkit.training.config import SECTIONS, TrainConfig
from rnnkit_cli.main import app, main

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The real entry point: an RnnkitError becomes one line on stderr and exit code 2."""
    monkeypatch.setattr(sys, "argv", ["rnnkit", *args])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def help_of(*args: str) -> str:
    result = runner.invoke(app, ["train", *args, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def listed(option: str, text: str) -> bool:
    """Whether ``option`` heads a row of an options panel (not just mentioned in a help text)."""
    return re.search(rf"│\s+(\*\s+)?{option}\b", text) is not None


def test_train_help_groups_options_by_section():
    text = help_of()
    panels = ["Batching", "Optimization", "Schedule", "Validation", "Checkpointing"]
    panels += ["Distributed", "Precision", "Run"]
    for panel in panels:
        assert f"─ {panel} ─" in text
    positions = [text.index(f"─ {panel} ─") for panel in panels]
    assert positions == sorted(positions)
    assert "--lr-scheduler" in text and "--nproc-per-node" in text


def test_config_sections_compose_one_flat_config():
    cfg = TrainConfig(lr=0.5, bptt=7, eval_bleu=True)
    assert (cfg.lr, cfg.bptt, cfg.eval_bleu) == (0.5, 7, True)
    for section in SECTIONS:
        assert isinstance(cfg, section)


def test_task_options_are_listed_only_for_their_task():
    assert not listed("--bptt", help_of()) and not listed("--eval-bleu", help_of())
    lm = help_of("--arch", "lstm_lm_zaremba_small")
    assert "Task options (lm)" in lm and listed("--bptt", lm) and not listed("--eval-bleu", lm)
    mt = help_of("--arch", "attention_seq2seq")
    assert listed("--eval-bleu", mt) and listed("--max-source-positions", mt)
    assert not listed("--bptt", mt)


def test_help_with_arch_lists_the_model_fields_with_types_and_preset_defaults():
    text = help_of("--arch", "lstm_lm_zaremba_small")
    assert "Model: lstm_lm_zaremba_small (model rnn_lm)" in text
    line = next(x for x in text.splitlines() if "--hidden-size" in x)
    assert "<int>" in line and "hidden units" in line
    assert "[default: 200]" in text.split("--hidden-size", 1)[1].split("--num-layers")[0]
    assert "--tie-weights" in text and "<bool>" in text
    assert not listed("--hidden-size", help_of())  # no --arch: no model fields


def test_unknown_option_suggests_from_training_and_model_fields(monkeypatch, capsys, tmp_path):
    base = ["train", str(tmp_path / "data"), "--arch", "char_rnn", "--save-dir", str(tmp_path)]
    code, _, err = run_main(monkeypatch, capsys, *base, "--lr-schedular", "fixed")
    assert code == 2
    assert "did you mean '--lr-scheduler'" in err  # the closest first
    code, _, err = run_main(monkeypatch, capsys, *base, "--hiden-size", "4")
    assert code == 2 and "did you mean '--hidden-size'" in err


def test_model_and_task_options_reach_the_run(monkeypatch, tmp_path):
    seen = {}

    def build_run(cfg, task, arch, layers, save_dir, given):
        seen.update(cfg=cfg, arch=arch, layers=layers, given=given)

    monkeypatch.setattr(train_cli, "load_task", lambda data, **kw: object())
    monkeypatch.setattr(train_cli, "build_run", build_run)
    monkeypatch.setattr(train_cli, "fit", lambda run: None)
    args = ["train", str(tmp_path), "--arch", "char_rnn", "--save-dir", str(tmp_path)]
    args += ["--hidden-size", "16", "--tie-weights", "--bptt", "9", "--residual", "false"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["arch"] == "char_rnn" and seen["cfg"].bptt == 9
    flags = seen["layers"][1]
    assert flags == {"hidden-size": "16", "tie-weights": "true", "residual": "false"}
    assert seen["given"] == {"bptt"}


def test_models_lists_every_registry():
    result = runner.invoke(app, ["models"], env=WIDE)
    assert result.exit_code == 0, result.output
    text = result.output
    headings = ["Architectures and presets", "Models", "Tasks", "Cells", "Attention scores"]
    headings += ["Criteria", "Optimizers", "LR schedulers", "Tokenizers"]
    for heading in headings:
        assert heading in text
    lines = text.splitlines()
    names = ["lstm_lm_zaremba_small", "rnn_lm", "translation", "lstm", "bahdanau"]
    names += ["label_smoothed_cross_entropy", "adamw", "inverse_sqrt", "sentencepiece"]
    for name in names:
        assert any(line.split()[:1] == [name] for line in lines), name


def test_models_columns_do_not_run_together_with_long_names():
    long_cell = "a_cell_with_a_name_much_longer_than_any_built_in_column_is_wide"
    CELL.add(long_cell, CELL.get("lstm"), "A long-named cell.")
    TOKENIZER_REGISTRY.add("t" * 40, TOKENIZER_REGISTRY.get("space"), "A long-named tokenizer.")
    text = runner.invoke(app, ["models"], env=WIDE).output
    line = next(x for x in text.splitlines() if long_cell in x)
    assert line.split() == [long_cell, "A", "long-named", "cell."]
    assert f"{long_cell}  A long-named cell." in line
    lstm = next(x for x in text.splitlines() if x.split()[:1] == ["lstm"])
    assert lstm.index("LSTM") == line.index("A long-named")  # one column for the whole registry


@dataclasses.dataclass(frozen=True)
class ScaleOptions:
    target_scale: float = dataclasses.field(default=1.0, metadata={"help": "Scale the targets."})


def test_a_plugin_tasks_own_options_are_listed_and_reach_its_config(monkeypatch, tmp_path):
    task = type("ScaleTask", (TASK_REGISTRY.get("lm"),), {"name": "scale_demo"})
    task.train_options = ScaleOptions
    TASK_REGISTRY.add("scale_demo", task)
    model = type("ScaleModel", (MODEL_REGISTRY.get("rnn_lm"),), {})
    register_model("scale_demo_model", task="scale_demo")(model)
    text = help_of("--arch", "scale_demo_model")
    assert "Task options (scale_demo)" in text and listed("--target-scale", text)
    assert not listed("--bptt", text)
    seen = {}
    monkeypatch.setattr(train_cli, "load_task", lambda data, **kw: object())
    monkeypatch.setattr(train_cli, "build_run", lambda cfg, *a, **k: seen.update(cfg=cfg))
    monkeypatch.setattr(train_cli, "fit", lambda run: None)
    args = ["train", str(tmp_path), "--arch", "scale_demo_model", "--save-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, "--target-scale", "2.5", "--lr", "0.5"])
    assert result.exit_code == 0, result.output
    assert (seen["cfg"].target_scale, seen["cfg"].lr) == (2.5, 0.5)
    assert isinstance(seen["cfg"], TrainConfig)
