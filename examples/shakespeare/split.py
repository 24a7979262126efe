"""Split Tiny Shakespeare: train = first 90% of characters, valid = the rest (cut at a newline).

python examples/shakespeare/split.py ../shared/data/tinyshakespeare/input.txt OUTDIR
"""

import sys
from pathlib import Path

src, out = Path(sys.argv[1]), Path(sys.argv[2])
text = src.read_text(encoding="utf-8")
cut = text.index("\n", int(len(text) * 0.9)) + 1
out.mkdir(parents=True, exist_ok=True)
(out / "train.txt").write_text(text[:cut], encoding="utf-8")
(out / "valid.txt").write_text(text[cut:], encoding="utf-8")
print(f"train {cut:,} chars, valid {len(text) - cut:,} chars", file=sys.stderr)
