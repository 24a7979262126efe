"""Sharded data through the installed ``rnnkit``, as the README's recipe does it: binarize the
first part, binarize the second with the first's dictionary, train on ``shard0:shard1``."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_lm_e2e import run
from tests.e2e.test_preflight_e2e import TINY, error_line

pytestmark = pytest.mark.e2e


def test_two_lm_shards_train_one_epoch_each(rnnkit_bin, tmp_path):
    parts = ["a b c a b\nb c a\n" * 15, "c c a b\na b b c a\n" * 15]
    for i, text in enumerate(parts):
        (tmp_path / f"part{i}.txt").write_text(text)
    (tmp_path / "valid.txt").write_text(parts[0][:60])
    pre = ["preprocess", "--task", "lm", "--workers", "1"]
    run(rnnkit_bin, *pre, "--trainpref", str(tmp_path / "part0.txt"), "--validpref",
        str(tmp_path / "valid.txt"), "--destdir", str(tmp_path / "shard0"))  # fmt: skip
    run(rnnkit_bin, *pre, "--trainpref", str(tmp_path / "part1.txt"), "--srcdict",
        str(tmp_path / "shard0" / "dict.txt"), "--destdir", str(tmp_path / "shard1"))  # fmt: skip
    data, save = f"{tmp_path / 'shard0'}:{tmp_path / 'shard1'}", tmp_path / "run"
    proc = run(rnnkit_bin, "train", data, "--save-dir", str(save), *TINY, "--batch-size", "2",
               "--bptt", "5", "--max-epoch", "3", "--threads", "1")  # fmt: skip
    for epoch, shard in ((1, 1), (2, 2), (3, 1)):
        assert f"epoch {epoch}: training on shard {shard} of 2" in proc.stderr
    log = [json.loads(line) for line in (save / "train_log.jsonl").read_text().splitlines()]
    valid = [e for e in log if e.get("event") == "valid"]
    assert [e["epoch"] for e in valid] == [1, 2, 3]  # the first shard's valid, every epoch
    missing = f"{tmp_path / 'shard0'}:{tmp_path / 'shard2'}"
    proc = run(rnnkit_bin, "train", missing, "--save-dir", str(tmp_path / "x"), *TINY,
               check=False)  # fmt: skip
    assert error_line(proc) == (
        f"rnnkit: error: {tmp_path / 'shard2'}: no such data directory (shard 2 of 2)"
    )
