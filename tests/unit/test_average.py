"""``rnnkit average``: the float64 mean of checkpoints' weights, in each tensor's dtype; refusals
of checkpoints of another model or dictionary, naming both files; the newest epoch / interval
checkpoints of a save dir; the result loads and decodes like any checkpoint."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import rnnkit
import rnnkit_cli.main
from rnnkit.errors import RnnkitError
from rnnkit.training.average import average_checkpoints, last_checkpoints
from rnnkit.training.checkpoint import load_checkpoint, save_checkpoint
from rnnkit_cli.average import app
from tests.helpers import run_main
from tests.unit.test_inference_objects import write_checkpoint
from tests.unit.test_training import TINY as LM_TINY
from tests.unit.test_training import make_char_data
from tests.unit.test_translation_task import TINY as PAIR_TINY
from tests.unit.test_translation_task import make_pairs


def perturbed(src: Path, dest: Path, seed: int, **changes) -> Path:
    """``src`` with noise added to every weight (another "run"), entries replaced by ``changes``,
    and the training state a real checkpoint carries."""
    state = load_checkpoint(src)
    g = torch.Generator().manual_seed(seed)
    state["model_state"] = {
        k: v + torch.randn(v.shape, generator=g, dtype=v.dtype)
        for k, v in state["model_state"].items()
    }
    state.update(optimizer={"state": {}}, schedule={}, progress={"epoch": seed}, rng={}, data_rng=0)
    state.update(changes)
    del state["format"], state["version"]
    save_checkpoint(state, dest)
    return dest


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("average")
    data = make_char_data(root / "lm")
    base = write_checkpoint(data, "rnn_lm", LM_TINY, root / "base.pt")
    other = make_char_data(root / "lm2", text="xyzxyz\nzyx\n" * 5)
    return {
        "root": root,
        "data": data,
        "a": perturbed(base, root / "a.pt", 1),
        "b": perturbed(base, root / "b.pt", 2),
        "c": perturbed(base, root / "c.pt", 3),
        "wide": write_checkpoint(data, "rnn_lm", {**LM_TINY, "hidden-size": 16}, root / "w.pt"),
        "dropout": write_checkpoint(data, "rnn_lm", {**LM_TINY, "dropout": 0.3}, root / "d.pt"),
        "other_dict": write_checkpoint(other, "rnn_lm", LM_TINY, root / "o.pt"),
    }


def test_the_average_is_the_float64_mean_of_every_weight(lm):
    paths = [lm["a"], lm["b"], lm["c"]]
    out = average_checkpoints(paths)
    states = [load_checkpoint(p)["model_state"] for p in paths]
    assert set(out["model_state"]) == set(states[0])
    for name, value in out["model_state"].items():
        mean = sum(s[name].double() for s in states) / 3
        assert value.dtype == states[0][name].dtype
        torch.testing.assert_close(value.double(), mean, rtol=0, atol=1e-6)
        assert not torch.equal(value, states[0][name])


def test_the_result_is_an_inference_checkpoint_with_the_last_inputs_metadata(lm, tmp_path):
    out = average_checkpoints([lm["a"], lm["c"]])
    last = load_checkpoint(lm["c"])
    for key in ("task", "arch", "model", "model_config", "dictionaries", "tokenizer"):
        assert out[key] == last[key]
    assert out["averaged_from"] == [str(lm["a"]), str(lm["c"])]
    for key in ("optimizer", "schedule", "progress", "rng", "data_rng"):
        assert key not in out
    save_checkpoint(out, tmp_path / "avg.pt")
    with pytest.raises(RnnkitError, match="an average of checkpoints holds no training state"):
        load_checkpoint(tmp_path / "avg.pt", resume=True)  # resuming from it is refused


def test_dtypes_are_kept_and_non_float_tensors_are_the_last_ones(lm, tmp_path):
    half = {}
    for i, name in enumerate("ab"):
        state = load_checkpoint(lm[name])
        weights = {k: v.to(torch.bfloat16) for k, v in state["model_state"].items()}
        weights["counter"] = torch.tensor([i + 1, 10 * (i + 1)])
        half[name] = weights
        save_checkpoint({**state, "model_state": weights}, tmp_path / f"{name}.pt")
    out = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])["model_state"]
    assert torch.equal(out["counter"], torch.tensor([2, 20]))
    for name, value in out.items():
        if name == "counter":
            continue
        assert value.dtype == torch.bfloat16
        mean = (half["a"][name].double() + half["b"][name].double()) / 2
        assert torch.equal(value, mean.to(torch.bfloat16))  # rounded once, from float64


def test_averaging_copies_of_one_checkpoint_gives_it_back_and_it_decodes(tmp_path):
    (tmp_path / "pairs").mkdir()
    mt = write_checkpoint(make_pairs(tmp_path / "pairs"), "attention_seq2seq", PAIR_TINY,
                          tmp_path / "mt.pt")  # fmt: skip
    save_checkpoint(average_checkpoints([mt, mt, mt]), tmp_path / "avg.pt")
    assert load_checkpoint(tmp_path / "avg.pt")["averaged_from"] == [str(mt)] * 3
    lines = ["a b c", "b a"]
    single, avg = rnnkit.load(mt, device="cpu"), rnnkit.load(tmp_path / "avg.pt", device="cpu")
    assert avg.translate(lines, beam=2) == single.translate(lines, beam=2)


def test_an_averaged_lm_loads_and_scores(lm, tmp_path):
    save_checkpoint(average_checkpoints([lm["a"], lm["b"]]), tmp_path / "avg.pt")
    scores = rnnkit.load(tmp_path / "avg.pt", device="cpu").score(["abcab"])
    assert scores[0]["tokens"] == 6 and scores[0]["logprob"] < 0


@pytest.mark.parametrize(
    "other, says",
    [
        ("wide", r"model option hidden_size is 8 vs 16"),
        ("other_dict", r"their 'main' dictionaries differ"),
    ],
)
def test_another_model_or_dictionary_is_refused_naming_both_files(lm, other, says):
    with pytest.raises(RnnkitError, match=f"^cannot average {lm['a']} and {lm[other]}: {says}"):
        average_checkpoints([lm["a"], lm[other]])


def test_another_task_or_tensor_shape_is_refused(lm, tmp_path):
    bad = perturbed(lm["a"], tmp_path / "t.pt", 4, task="tagging")
    with pytest.raises(RnnkitError, match=r"task 'lm' vs 'tagging'"):
        average_checkpoints([lm["a"], bad])
    state = load_checkpoint(lm["a"])
    name = next(iter(state["model_state"]))
    weights = {**state["model_state"], name: torch.zeros(3)}
    save_checkpoint({**state, "model_state": weights}, tmp_path / "s.pt")
    with pytest.raises(RnnkitError, match=rf"tensor '{name}' is of shape .* vs of shape \(3,\)"):
        average_checkpoints([lm["a"], tmp_path / "s.pt"])


def test_dropout_may_differ(lm):
    out = average_checkpoints([lm["a"], lm["dropout"]])
    assert out["model_config"]["dropout"] == 0.3


def touch(d: Path, *names: str) -> None:
    d.mkdir(exist_ok=True)
    for name in names:
        (d / name).write_bytes(b"")


def test_the_last_epoch_checkpoints_by_epoch_number(tmp_path):
    touch(tmp_path, *(f"checkpoint{i}.pt" for i in (1, 2, 9, 10, 11)), "checkpoint_last.pt",
          "checkpoint_best.pt", "checkpoint_3_30.pt")  # fmt: skip
    got = last_checkpoints(tmp_path, epochs=3)
    assert [p.name for p in got] == ["checkpoint9.pt", "checkpoint10.pt", "checkpoint11.pt"]


def test_the_last_interval_checkpoints_by_update_count(tmp_path):
    touch(tmp_path, "checkpoint_1_100.pt", "checkpoint_2_1000.pt", "checkpoint_2_200.pt",
          "checkpoint_1_50.pt", "checkpoint5.pt")  # fmt: skip
    got = last_checkpoints(tmp_path, updates=2)
    assert [p.name for p in got] == ["checkpoint_2_200.pt", "checkpoint_2_1000.pt"]


def test_too_few_checkpoints_in_the_dir_says_how_many(tmp_path):
    touch(tmp_path, "checkpoint1.pt", "checkpoint2.pt")
    with pytest.raises(RnnkitError, match=r"2 checkpoint\(s\) named checkpoint\{epoch\}.pt found, "
                       r"fewer than the 5 asked for"):  # fmt: skip
        last_checkpoints(tmp_path, epochs=5)
    with pytest.raises(RnnkitError, match=r"^.*: 0 checkpoint\(s\) named checkpoint_\{epoch\}_"):
        last_checkpoints(tmp_path, updates=1)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_cli_averages_files_given_after_one_inputs(lm, tmp_path):
    out = tmp_path / "avg.pt"
    result = invoke("--inputs", str(lm["a"]), str(lm["b"]), "--output", str(out))
    assert result.exit_code == 0, result.output
    state = load_checkpoint(out)
    assert state["averaged_from"] == [str(lm["a"]), str(lm["b"])]
    expected = average_checkpoints([lm["a"], lm["b"]])["model_state"]
    for name, value in state["model_state"].items():
        assert torch.equal(value, expected[name])


def test_cli_averages_the_last_epochs_of_a_save_dir(lm, tmp_path):
    for epoch, name in enumerate("abc", start=1):
        (tmp_path / f"checkpoint{epoch}.pt").write_bytes(lm[name].read_bytes())
    out = tmp_path / "avg.pt"
    result = invoke("--inputs", str(tmp_path), "--num-epoch-checkpoints", "2", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert [Path(p).name for p in load_checkpoint(out)["averaged_from"]] == [
        "checkpoint2.pt",
        "checkpoint3.pt",
    ]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--inputs", "DIR", "--output", "o.pt"], "is a directory: add --num-epoch-checkpoints"),
        (["--inputs", "DIR", "DIR", "--num-update-checkpoints", "1", "--output", "o.pt"],
         "take one save dir"),
        (["--inputs", "DIR"], "--output is required"),
        (["--output", "o.pt"], "--inputs is required"),
    ],
)  # fmt: skip
def test_cli_usage_errors(tmp_path, args, says):
    result = invoke(*[str(tmp_path) if a == "DIR" else a for a in args])
    assert isinstance(result.exception, RnnkitError) and says in str(result.exception)


@pytest.mark.skipif(
    "average" not in inspect.getsource(rnnkit_cli.main), reason="not yet in cli/main.py's table"
)
def test_rnnkit_average_through_main(lm, tmp_path):
    out = tmp_path / "avg.pt"
    run_main("average", "--inputs", str(lm["a"]), str(lm["b"]), "--output", str(out))
    assert load_checkpoint(out)["averaged_from"] == [str(lm["a"]), str(lm["b"])]
    bad = run_main("average", "--inputs", str(lm["a"]), str(lm["wide"]), "--output", str(out),
                   check=False)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("rnnkit: error: cannot average ")


def test_a_trained_runs_last_epochs_average_fine_tunes_but_does_not_resume(tmp_path):
    from rnnkit.training import loop
    from tests.unit.test_finetune import build

    loop.fit(build(tmp_path, "run", max_epoch=3))
    out = tmp_path / "avg.pt"
    result = invoke("--inputs", str(tmp_path / "run"), "--num-epoch-checkpoints", "2",
                    "--output", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    averaged = load_checkpoint(out)
    assert [Path(p).name for p in averaged["averaged_from"]] == ["checkpoint2.pt", "checkpoint3.pt"]
    run = build(tmp_path, "tuned", finetune_from_model=str(out))
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(tensor, averaged["model_state"][name]), name
    run.close()
    with pytest.raises(
        RnnkitError, match=r"avg.pt: an average of checkpoints .* --finetune-from-model"
    ):
        build(tmp_path, "resumed", restore_file=str(out))
