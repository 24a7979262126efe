"""Summarise a `benchmarks/gpu_checks.sh` output folder: one row per step.

    python benchmarks/gpu_summary.py OUT

For training steps: exit status, updates done, tokens/s as the trainer last logged it (counted from
the epoch's start, so it includes warm-up and, with --compile, compilation) and the steady rate in
updates/s between the second and the last logged progress record. For the decode steps: exit
status, wall seconds and the command's last line. A failed step shows the last line of its log.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _train_row(run: Path) -> str:
    log = run / "train_log.jsonl"
    if not log.exists():
        return "no train_log.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    train = [e for e in events if e.get("event") == "train"]
    if not train:
        return "no progress records"
    last = train[-1]
    steady = ""
    if len(train) >= 3:
        a, b = train[1], train[-1]
        if b["time"] > a["time"] and b["epoch"] == a["epoch"]:
            steady = f", steady {(b['updates'] - a['updates']) / (b['time'] - a['time']):.1f} upd/s"
    speed = f"{last['tokens_per_s']:,.0f} tok/s (from epoch start)"
    return f"{last['updates']} updates, {speed}{steady}"


def main(out: Path) -> None:
    for line in (out / "steps.txt").read_text().splitlines():
        name, rc, wall = line.split()
        log = out / f"{name}.log"
        tail = [t for t in log.read_text(errors="replace").splitlines() if t.strip()][-1:] or [""]
        detail = _train_row(out / name) if (out / name).is_dir() else tail[0][:160]
        if rc != "rc=0":
            detail = f"FAILED: {tail[0][:200]}"
        print(f"{name:16} {rc:7} {wall:11} {detail}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
