"""Tag raw lines with a trained tagger: ``python tag.py CHECKPOINT INPUT OUT`` writes ``OUT.tags``
(one tag per token, space-separated) and, for a model with a label head, ``OUT.label``.

A stand-in until ``rnnkit generate`` tags; it calls the library: ``rnnkit.load`` and the tagging
task's ``tag_lines``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rnnkit
from rnnkit.io import atomic_write, read_text_lines


def main(checkpoint: str, source: str, out: str) -> None:
    model = rnnkit.load(checkpoint, device="cpu")
    results = model.task.tag_lines(model.model, list(read_text_lines(source)), model.device)
    with atomic_write(Path(out + ".tags")) as f:
        f.writelines(" ".join(r["tags"]) + "\n" for r in results)
    if results and "label" in results[0]:
        with atomic_write(Path(out + ".label")) as f:
            f.writelines(r["label"] + "\n" for r in results)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} CHECKPOINT INPUT OUT")
    main(*sys.argv[1:])
