"""Resources are errors, not tracebacks, through the installed ``rnnkit``: a full stdout, the
file-size limit in preprocess, checkpoint files that are not rnnkit's, a folder given as a
file and a file as a folder each give one line ``rnnkit: error: ...`` naming it, exit 2.

The checkpoints are written in-process from untrained tiny models (no training needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rnnkit.training.checkpoint import save_checkpoint
from rnnkit.training.run import checkpoint_state
from tests.helpers import run_main, run_rnnkit
from tests.unit import test_tagging, test_training
from tests.unit.test_resources import bad_checkpoints

pytestmark = pytest.mark.e2e
DEV_FULL = Path("/dev/full")
FSIZE_LIMIT = 4096  # bytes: room for the dictionary, not for train.bin


def rnnkit(rnnkit_bin: str, *args: str, stdin: str = "", stdout=subprocess.PIPE, limit=None):
    """Run the installed command; ``limit`` is a file-size limit (``ulimit -f``) in bytes."""
    return run_rnnkit(rnnkit_bin, *args, stdin=stdin, stdout=stdout, limit=limit, check=False)


def the_error(proc: subprocess.CompletedProcess, *, alone: bool = True) -> str:
    """The one ``rnnkit: error:`` line of a failed run (``alone``: stderr holds nothing else)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    if alone:
        assert len(lines) == 1, proc.stderr
    assert lines[-1].startswith("rnnkit: error: "), proc.stderr
    return lines[-1].removeprefix("rnnkit: error: ")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """An lm checkpoint, a tagger checkpoint and the lm's data dir."""
    root = tmp_path_factory.mktemp("resources")
    lm_run = test_training.make_run(root)
    tag_run = test_tagging.make_run(test_tagging.make_data(root), root / "tagger")
    out = {"data": root / "data"}
    for name, run in (("lm", lm_run), ("tagger", tag_run)):
        out[name] = root / f"{name}.pt"
        save_checkpoint(checkpoint_state(run), out[name])
        run.close()
    return out


@pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full on this system")
def test_results_to_a_full_disk_are_one_line(rnnkit_bin, models):
    lines = "a b c d\n" * 200
    commands = {
        "generate": ["generate", "--path", str(models["tagger"]), "-i", "-"],
        "score": ["score", "--path", str(models["lm"]), "--input", "-"],
        "sample": ["sample", "--path", str(models["lm"]), "--length", "2000"],
    }
    with open(DEV_FULL, "w") as full:
        for name, args in commands.items():
            error = the_error(rnnkit(rnnkit_bin, *args, stdin=lines, stdout=full))
            assert error == "<stdout>: no space left on device", name


def test_preprocess_over_the_file_size_limit_names_the_file_and_leaves_nothing(
    rnnkit_bin, tmp_path
):
    (tmp_path / "train.txt").write_text("the cat sat on the mat\n" * 3000)
    dest = tmp_path / "data"
    proc = rnnkit(
        rnnkit_bin,
        "preprocess",
        "--task",
        "lm",
        "--trainpref",
        str(tmp_path / "train.txt"),
        "--destdir",
        str(dest),
        limit=FSIZE_LIMIT,
    )
    error = the_error(proc, alone=False)  # after the progress lines
    assert error.startswith(f"{dest / 'train.bin'}: file too large"), error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.txt"]


def test_bad_checkpoints_are_one_line_in_every_command(models, tmp_path):
    files = bad_checkpoints(models["lm"], tmp_path)
    commands = {
        "sample": ["sample", "--length", "3"],
        "score": ["score", "--input", "-"],
        "generate": ["generate", "-i", "-"],
    }
    kinds = {  # every kind is checked in tests/unit/test_resources.py; here, one command each
        "sample": ["class", "no_model_state"],
        "score": ["shape"],
        "generate": ["truncated", "random"],
    }
    for command, args in commands.items():
        for kind in kinds[command]:
            path, expected = files[kind]
            proc = run_main(*args, "--path", str(path), stdin="a b\n", check=False)
            assert the_error(proc).startswith(expected), (command, kind, proc.stderr)
            assert proc.stdout == ""


def test_a_directory_as_path_gives_the_same_line_in_every_command(tmp_path):
    runs = tmp_path / "runs" / "x"
    runs.mkdir(parents=True)
    expected = f"{runs}: is a directory; give a checkpoint file such as {runs}/checkpoint_best.pt"
    for args in (["sample"], ["score", "--input", "-"], ["generate", "-i", "-"]):
        assert the_error(run_main(*args, "--path", str(runs), check=False)) == expected, args


def test_config_directory_and_save_dir_file_are_one_line(rnnkit_bin, models, tmp_path):
    data = str(models["data"])
    proc = rnnkit(
        rnnkit_bin,
        "train",
        data,
        "--arch",
        "char_rnn",
        "--save-dir",
        str(tmp_path / "run"),
        "--config",
        str(tmp_path),
    )
    assert the_error(proc).startswith(f"{tmp_path}: is a directory"), proc.stderr
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    proc = rnnkit(rnnkit_bin, "train", data, "--arch", "char_rnn", "--save-dir", str(afile))
    assert str(afile) in the_error(proc) and afile.read_text() == "not a folder\n"
