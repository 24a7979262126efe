"""The README's Python snippet runs as written, on tiny checkpoints instead of the examples' ones:
a char LM, a reverse-the-words translation model and a joint tagger, one epoch each."""

import re
from pathlib import Path

import pytest
import torch

from rnnkit.training.loop import fit

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_readme_python_snippet_runs(tmp_path, capsys, one_thread):
    from tests.unit import test_tagging, test_training, test_translation_task

    fit(test_training.make_run(tmp_path / "lm", max_epoch=1))
    (tmp_path / "mt").mkdir()
    fit(test_translation_task.make_run(tmp_path / "mt", "run", max_epoch=1))
    tagging = test_tagging.make_data(tmp_path / "tag")
    fit(test_tagging.make_run(tagging, tmp_path / "tag" / "run", model={"label-head": True},
                              max_epoch=1))  # fmt: skip
    (snippet,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    paths = {
        "demo-out/ckpt/checkpoint_best.pt": tmp_path / "lm" / "run" / "checkpoint_best.pt",
        "toy-out/ckpt/checkpoint_best.pt": tmp_path / "mt" / "run" / "checkpoint_best.pt",
        "runs/atis/bilstm/checkpoint_best.pt": tmp_path / "tag" / "run" / "checkpoint_best.pt",
    }
    for theirs, ours in paths.items():
        assert theirs in snippet
        snippet = snippet.replace(theirs, str(ours))
    capsys.readouterr()
    exec(compile(snippet, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    text = "\n".join(out)
    assert text.startswith("ROMEO:") and "'logprob'" in text  # sample(), score()
    assert any(line.startswith("['") and line.endswith(", '']") for line in out)  # translate()
    (tagged,) = [line for line in out if line.startswith("['show', 'flights',")]  # tag()
    assert len(re.findall(r"'(?:O|[BI]-\w)'", tagged)) == 6  # one tag per token
    (classified,) = [line for line in out if line.startswith("[{'tokens': ['what',")]
    assert "'label':" in classified and "'prob':" in classified  # classify()
    assert out[-1] == (
        "translate() needs a model of task translation; this checkpoint is task 'tagging'"
    )
