"""The README's Python snippet runs as written (on a tiny checkpoint instead of the demo's)."""

import re
from pathlib import Path

from rnnkit.training.loop import fit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_snippet_runs(tmp_path, capsys):
    from tests.unit.test_training import make_run

    fit(make_run(tmp_path, max_epoch=1))
    (snippet,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert "demo-out/ckpt/checkpoint_best.pt" in snippet
    snippet = snippet.replace(
        "demo-out/ckpt/checkpoint_best.pt", str(tmp_path / "run" / "checkpoint_best.pt")
    )
    exec(compile(snippet, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and "'logprob'" in out
