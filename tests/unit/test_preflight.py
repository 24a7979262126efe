"""Checks before the first update: option ranges, splits that exist and are not empty, first
batches that build, and options only validation would have read (rnnkit.training.preflight)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rnnkit.config import resolve
from rnnkit.data.binarized import DatasetWriter
from rnnkit.errors import RnnkitError
from rnnkit.tasks import load_task
from rnnkit.tasks.lm import LanguageModelingTask
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import fit
from rnnkit.training.preflight import PreflightError, check_run, first_batch
from tests.unit.test_tagging import make_data as make_tagging_data
from tests.unit.test_tagging import toy
from tests.unit.test_training import make_char_data, make_run
from tests.unit.test_translation_task import make_pairs


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "--batch-size must be at least 1 (got 0)"),
        ({"valid_batch_size": 0}, "--valid-batch-size must be at least 1 (got 0)"),
        ({"bptt": 0}, "--bptt must be at least 1 (got 0)"),
        ({"lr": -1}, "--lr must be > 0 (got -1.0)"),
        ({"lr": 0}, "--lr must be > 0 (got 0.0)"),
        ({"lr": "nan"}, "--lr must be > 0 (got nan)"),
        ({"update_freq": 0}, "--update-freq must be at least 1 (got 0)"),
        ({"clip_norm": -1}, "--clip-norm must be >= 0 (got -1.0)"),
        ({"momentum": -0.5}, "--momentum must be >= 0 (got -0.5)"),
        ({"weight_decay": -1e-4}, "--weight-decay must be >= 0"),
        ({"max_epoch": -1}, "--max-epoch must be at least 0 (got -1)"),
        ({"max_update": -1}, "--max-update must be at least 0 (got -1)"),
        ({"patience": -2}, "--patience must be at least 0 (got -2)"),
        ({"label_smoothing": 1.0}, "--label-smoothing must be in [0, 1) (got 1.0)"),
        ({"label_smoothing": -0.1}, "--label-smoothing must be in [0, 1)"),
        ({"lr_decay": 0}, "--lr-decay must be in (0, 1] (got 0.0)"),
        ({"lr_decay": 1.5}, "--lr-decay must be in (0, 1]"),
        ({"threads": -1}, "--threads must be at least 0 (got -1)"),
        ({"stop_time_hours": -1}, "--stop-time-hours must be >= 0"),
        ({"max_hours": -1}, "--max-hours must be >= 0"),
        ({"validate_interval_updates": -5}, "--validate-interval-updates must be at least 0"),
        ({"max_tokens": -1}, "--max-tokens must be at least 0 (got -1)"),
        ({"adam_betas": "0.9"}, "--adam-betas must be two values in"),
        ({"valid_subset": "valid,"}, "--valid-subset must be comma-separated split names"),
    ],
)
def test_out_of_range_options_are_refused_when_the_config_is_built(options, message):
    with pytest.raises(RnnkitError) as e:
        resolve(TrainConfig, options)
    assert message in str(e.value)


def test_range_problems_are_one_line_naming_each_option():
    with pytest.raises(RnnkitError) as e:
        resolve(TrainConfig, {"bptt": 0, "lr": -1})
    assert "\n" not in str(e.value)
    assert "--bptt" in str(e.value) and "--lr" in str(e.value)


def test_a_token_budget_alone_is_allowed():
    assert resolve(TrainConfig, {"batch_size": 0, "max_tokens": 100}).max_tokens == 100


@pytest.fixture
def lm(tmp_path) -> Path:
    return make_char_data(tmp_path / "lm")


def check(data: Path, **options) -> None:
    check_run(resolve(TrainConfig, options), load_task(data))


def test_a_good_lm_run_passes(lm):
    check(lm, batch_size=4, bptt=6)


def test_a_missing_valid_split_names_it_the_data_dir_and_the_splits_there(lm):
    with pytest.raises(PreflightError) as e:
        check(lm, batch_size=4, valid_subset="valid,tset")
    msg = str(e.value)
    assert msg.startswith("--valid-subset: no 'tset' split in ")
    assert str(lm) in msg and "tset.bin and tset.idx not found" in msg
    assert "splits there: train, valid" in msg


def test_a_missing_train_split_is_refused(lm):
    for ext in ("bin", "idx"):
        (lm / f"train.{ext}").unlink()
    with pytest.raises(PreflightError, match="no 'train' split in .*splits there: valid"):
        check(lm, batch_size=4)


def test_an_empty_valid_split_is_refused(lm):
    DatasetWriter(lm / "valid.bin", np.uint16).finalize(lm / "valid.idx")
    with pytest.raises(PreflightError, match=r"the 'valid' split in .* is empty \(0 tokens\)"):
        check(lm, batch_size=4)


def test_lm_streams_the_valid_split_cannot_fill_name_the_option(lm):
    with pytest.raises(PreflightError, match="^--valid-batch-size 5000: the 'valid' split .* "
                       r"340 tokens, too few for 5000 parallel streams .*at most 170"):  # fmt: skip
        check(lm, batch_size=4, valid_batch_size=5000)
    with pytest.raises(PreflightError, match="^--batch-size 200: the 'train' split"):
        check(lm, batch_size=200)


def test_lm_streams_must_divide_among_the_workers(lm):
    with pytest.raises(PreflightError, match="--batch-size 3 .* not a multiple of the 2 workers"):
        check_run(resolve(TrainConfig, {"batch_size": 3}), load_task(lm), world=2)
    check_run(resolve(TrainConfig, {"batch_size": 4}), load_task(lm), world=2)


def test_the_lm_check_reads_no_whole_stream(lm, monkeypatch):
    def whole_stream(self, split):
        raise AssertionError(f"read all of {split}")

    monkeypatch.setattr(LanguageModelingTask, "load_stream", whole_stream)
    check(lm, batch_size=4, bptt=6)


def test_names_and_metrics_are_checked(lm):
    with pytest.raises(PreflightError, match="unknown optimizer 'sgdd'; did you mean 'sgd'"):
        check(lm, batch_size=4, optimizer="sgdd")
    with pytest.raises(PreflightError, match="unknown lr scheduler 'fixd'"):
        check(lm, batch_size=4, lr_scheduler="fixd")
    with pytest.raises(PreflightError, match="--best-checkpoint-metric ppx: .* did you mean 'ppl'"):
        check(lm, batch_size=4, best_checkpoint_metric="ppx")
    with pytest.raises(PreflightError, match="--eval-bleu: task 'lm'"):
        check(lm, batch_size=4, eval_bleu=True)


@pytest.mark.slow
def test_fit_stops_before_the_first_update_on_a_missing_split(tmp_path):
    run = make_run(tmp_path, valid_subset="dev", max_epoch=1)
    with pytest.raises(PreflightError, match="no 'dev' split"):
        fit(run)
    assert run.progress.updates == 0
    assert not (tmp_path / "run" / "checkpoint_last.pt").exists()
    assert not (tmp_path / "run" / "train_log.jsonl").exists()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return make_pairs(tmp_path_factory.mktemp("pairs"))


def test_translation_eval_bleu_args_are_read_at_the_start(pairs):
    with pytest.raises(PreflightError, match="--eval-bleu-args: invalid JSON"):
        check(pairs, eval_bleu=True, eval_bleu_args="{beam: 2")
    with pytest.raises(PreflightError, match="unknown --eval-bleu-args 'bem'.*'beam'"):
        check(pairs, eval_bleu=True, eval_bleu_args='{"bem": 2}')
    with pytest.raises(PreflightError, match="--eval-bleu-args: --beam must be >= 1"):
        check(pairs, eval_bleu=True, eval_bleu_args='{"beam": 0}')
    with pytest.raises(PreflightError, match="--eval-bleu-args: expected a JSON object"):
        check(pairs, eval_bleu=True, eval_bleu_args="[4]")
    with pytest.raises(PreflightError, match="--best-checkpoint-metric bleu: .*with --eval-bleu"):
        check(pairs, best_checkpoint_metric="bleu", maximize_best_checkpoint_metric=True)
    check(pairs, eval_bleu=True, eval_bleu_args='{"beam": 2}', best_checkpoint_metric="bleu")


def test_translation_max_tokens_below_the_longest_pair_names_it(pairs):
    with pytest.raises(PreflightError, match=r"^--max-tokens 3: example \d+ of the 'train' split "
                       r".* has \d+ tokens; give --max-tokens \d+ or more"):  # fmt: skip
        check(pairs, max_tokens=3)


def test_translation_pairs_all_over_the_position_limits_are_refused(pairs):
    with pytest.raises(PreflightError, match="all 60 pairs .* longer than --max-source-pos"):
        check(pairs, max_source_positions=1)


def test_an_empty_tagging_valid_split_is_refused(tmp_path):
    # It used to report `valid loss 0.0000 | ppl 1.0000 | best` after every epoch.
    data = make_tagging_data(tmp_path, valid=toy(3, 2))
    shutil.copytree(data, tmp_path / "empty")
    for stream in ("in", "tags", "label"):
        DatasetWriter(tmp_path / "empty" / f"valid.{stream}.bin", np.uint16).finalize(
            tmp_path / "empty" / f"valid.{stream}.idx"
        )
    check(data, batch_size=4)
    with pytest.raises(PreflightError, match=r"the 'valid' split in .* is empty \(0 sentences\)"):
        check(tmp_path / "empty", batch_size=4)
    with pytest.raises(PreflightError, match="--valid-subset: no 'test' split .*in.bin"):
        check(data, batch_size=4, valid_subset="test")
    with pytest.raises(PreflightError, match=r"--best-checkpoint-metric f2: .*did you mean 'f1'"):
        check(data, batch_size=4, best_checkpoint_metric="f2")


def test_first_batch_takes_leading_examples_within_both_budgets():
    sizes = np.array([3, 5, 2, 9, 1])
    assert first_batch(sizes, 2, 0) == [0, 1]
    assert first_batch(sizes, 10, 10) == [0, 1]  # a third would pad to 3 x 5 = 15 tokens
    assert first_batch(sizes, 0, 100) == [0, 1, 2, 3, 4]
    assert first_batch(sizes[3:], 4, 9) == [0]  # one example alone may fill the budget


def test_a_task_without_hooks_is_checked_for_the_rest(lm):
    from rnnkit.tasks import TaskBase

    class Plain(TaskBase):  # the defaults: no option or split checks of its own
        name = "plain"

        def valid_metrics(self, cfg):
            return {"loss"}

    with pytest.raises(PreflightError, match="unknown criterion"):
        check_run(resolve(TrainConfig, {"criterion": "nope"}), Plain())
    check_run(resolve(TrainConfig, {}), Plain())
