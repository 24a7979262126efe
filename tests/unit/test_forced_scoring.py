"""Forced scoring of given outputs and n-best output (issue 13, items 5-6): ``rnnkit score
--input SRC --reference TGT``, ``generate --score-reference``, ``--print-scores`` and
``--output-format jsonl``, on a tiny reverse-the-words translation model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.generation.forced import force
from rnnkit.generation.search import SearchConfig
from rnnkit.training.loop import fit
from tests.helpers import run_main
from tests.unit.test_translation_task import make_run


@pytest.fixture(scope="module")
def mt(tmp_path_factory) -> Path:
    """A tiny attention model trained one epoch on reversed 6-word sentences; its folder holds
    ``data`` (binarized), ``valid.src``/``valid.tgt`` (raw) and ``ckpt/checkpoint_best.pt``."""
    root = tmp_path_factory.mktemp("forced")
    fit(make_run(root, "ckpt", max_epoch=1, no_epoch_checkpoints=True))
    return root


def sources(mt: Path) -> list[str]:
    return (mt / "valid.src").read_text().splitlines()


def references(mt: Path) -> list[str]:
    return (mt / "valid.tgt").read_text().splitlines()


def test_force_equals_one_step_at_a_time(mt):
    translator = rnnkit.load(mt / "ckpt" / "checkpoint_best.pt", "cpu")
    task, model = translator.task, translator.model
    srcs = [task.encode_source(s) for s in sources(mt)[:4]]
    tgts = [task.tgt_dict.encode(r.split(), append_eos=True) for r in references(mt)[:4]]
    hypos = task.force_score(model, srcs, tgts, torch.device("cpu"))
    eos = task.tgt_dict.eos_index
    with torch.inference_mode():
        for src, tgt, h in zip(srcs, tgts, hypos, strict=True):
            state = model.encode(torch.tensor([src]), torch.tensor([len(src)]))
            prev, total = torch.tensor([eos]), 0.0
            for token in tgt:
                lprobs, state, _ = model.step(prev, state)
                total += float(lprobs[0, token])
                prev = torch.tensor([token])
            assert float(h.positional_scores.sum()) == pytest.approx(total, abs=1e-5)
            assert h.tokens.tolist() == tgt[:-1] and h.positional_scores.numel() == len(tgt)
            assert h.alignment is not None and h.alignment.numel() == len(tgt) - 1


def test_forced_score_of_the_greedy_output_is_its_search_score(mt):
    translator = rnnkit.load(mt / "ckpt" / "checkpoint_best.pt", "cpu")
    task, model = translator.task, translator.model
    srcs = [task.encode_source(s) for s in sources(mt)]
    found = task.search(
        model, srcs, SearchConfig(beam=1, lenpen=0.7, max_len_b=20), torch.device("cpu")
    )
    targets = [h[0].tokens.tolist() + [task.tgt_dict.eos_index] for h in found]
    forced = task.force_score(model, srcs, targets, torch.device("cpu"), lenpen=0.7)
    for h, f in zip(found, forced, strict=True):
        torch.testing.assert_close(f.positional_scores, h[0].positional_scores, atol=1e-5,
                                   rtol=0)  # fmt: skip
        assert f.score == pytest.approx(h[0].score, rel=1e-5)  # search sums in float32


def test_force_of_nothing_is_nothing():
    assert force(None, torch.zeros(0, 1), torch.zeros(0), [], 2, 1) == []  # type: ignore[arg-type]


def test_score_reference_json_matches_python_and_generate_score_reference(mt):
    ckpt = str(mt / "ckpt" / "checkpoint_best.pt")
    proc = run_main("score", "--path", ckpt, "--input", str(mt / "valid.src"),
                    "--reference", str(mt / "valid.tgt"), "--print-token-scores",
                    "--buffer-size", "5")  # fmt: skip
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == len(sources(mt)) and "nats" in proc.stderr
    for r in records:
        assert set(r) == {"tokens", "logprob", "ppl", "token_logprobs"}
        assert len(r["token_logprobs"]) == r["tokens"]
        assert r["logprob"] == pytest.approx(sum(r["token_logprobs"]), abs=1e-5)
        assert r["ppl"] == pytest.approx(math.exp(-r["logprob"] / r["tokens"]))
    api = rnnkit.load(ckpt, "cpu").score(sources(mt), references(mt))
    assert [a["logprob"] for a in api] == pytest.approx([r["logprob"] for r in records], abs=1e-5)

    gen = run_main("generate", str(mt / "data"), "--path", ckpt, "--gen-subset", "valid",
                   "--score-reference", "--batch-size", "3").stdout.splitlines()  # fmt: skip
    positional = {int(line.split("\t")[0][2:]): [float(x) for x in line.split("\t")[1].split()]
                  for line in gen if line.startswith("P-")}  # fmt: skip
    hyp = {int(line.split("\t")[0][2:]): line.split("\t")[2] for line in gen if line[:2] == "H-"}
    assert len(positional) == len(records)
    for i, r in enumerate(records):
        assert positional[i] == pytest.approx(r["token_logprobs"], abs=1e-4)
        assert hyp[i] == references(mt)[i]  # the reference is printed as the hypothesis
    assert gen[-1].startswith("Score valid references: 12 sentences")


def test_unequal_line_counts_are_one_line_naming_both(mt, tmp_path):
    short = tmp_path / "short.tgt"
    short.write_text("".join(r + "\n" for r in references(mt)[:5]))
    ckpt = str(mt / "ckpt" / "checkpoint_best.pt")
    proc = run_main("score", "--path", ckpt, "--input", str(mt / "valid.src"), "--reference",
                    str(short), "--buffer-size", "2", check=False)  # fmt: skip
    assert proc.returncode == 2
    assert f"{short} ends at line 5 but {mt / 'valid.src'} goes on" in proc.stderr
    assert len(proc.stdout.splitlines()) == 5  # the aligned pairs were scored, streaming


def test_reference_options_are_checked(mt):
    ckpt = str(mt / "ckpt" / "checkpoint_best.pt")
    proc = run_main("score", "--path", ckpt, "--reference", "x", check=False)
    assert proc.returncode == 2 and "--reference applies to --input" in proc.stderr
    proc = run_main("generate", "--path", ckpt, "--input", str(mt / "valid.src"),
                    "--score-reference", check=False)  # fmt: skip
    assert proc.returncode == 2 and "rnnkit score --input SRC --reference TGT" in proc.stderr


def test_skipped_long_pairs_are_null(mt, tmp_path):
    ckpt = str(mt / "ckpt" / "checkpoint_best.pt")
    (tmp_path / "s").write_text("a b\na b c d e f a b\n")
    (tmp_path / "t").write_text("b a\nb a\n")
    proc = run_main("score", "--path", ckpt, "--input", str(tmp_path / "s"), "--reference",
                    str(tmp_path / "t"), "--max-positions", "5",
                    "--skip-invalid-size-inputs")  # fmt: skip
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert first["tokens"] == 3 and second is None
    assert f"{tmp_path / 's'}:2" in proc.stderr


def test_nbest_print_scores_and_jsonl(mt, tmp_path):
    ckpt = str(mt / "ckpt" / "checkpoint_best.pt")
    (tmp_path / "in").write_text("a b c\n\nd e\n")
    args = [
        "generate",
        "--path",
        ckpt,
        "--input",
        str(tmp_path / "in"),
        "--beam",
        "3",
        "--max-len-b",
        "10",
    ]
    plain = run_main(*args, "--nbest", "3", "--print-scores").stdout.split("\n")
    assert plain[1] == "" and len(plain) == 4
    for line in (plain[0], plain[2]):
        fields = line.split("\t")
        assert len(fields) == 6
        scores = [float(s) for s in fields[1::2]]
        assert scores == sorted(scores, reverse=True)
    default = run_main(*args, "--nbest", "2").stdout.splitlines()
    assert [line.split(" ||| ") for line in default][0] == plain[0].split("\t")[0:4:2]

    jsonl = run_main(*args, "--nbest", "3", "--output-format", "jsonl", "--print-scores",
                     "--print-alignment").stdout.splitlines()  # fmt: skip
    objs = [json.loads(line) for line in jsonl]
    assert [o["line"] for o in objs] == [1, 2, 3] and objs[1]["nbest"] == []
    assert objs[0]["source"] == "a b c"
    best = objs[0]["nbest"]
    assert [e["hypothesis"] for e in best] == plain[0].split("\t")[0::2]
    assert [e["score"] for e in best] == sorted((e["score"] for e in best), reverse=True)
    for e in best:
        assert len(e["positional_scores"]) == len(e["tokens"]) + 1
        mean = sum(e["positional_scores"]) / len(e["positional_scores"])
        assert e["score"] == pytest.approx(mean, abs=1e-4)  # search sums in float32
        assert len(e["alignment"].split()) == len(e["tokens"])
    one = run_main(*args, "--nbest", "1", "--print-scores").stdout.splitlines()
    assert one[0] == "\t".join(plain[0].split("\t")[:2])


def test_lm_print_token_scores(tmp_path):
    from tests.unit.test_inference_objects import write_checkpoint
    from tests.unit.test_training import TINY, make_char_data

    ckpt = write_checkpoint(make_char_data(tmp_path / "lm"), "rnn_lm", TINY, tmp_path / "lm.pt")
    proc = run_main("score", "--path", str(ckpt), "--input", "-", "--print-token-scores",
                    stdin="abc\nb\n")  # fmt: skip
    for line in proc.stdout.splitlines():
        r = json.loads(line)
        assert r["tokens"] == len(r["token_logprobs"]) > 1
        assert r["logprob"] == pytest.approx(sum(r["token_logprobs"]), abs=1e-5)
    plain = json.loads(run_main("score", "--path", str(ckpt), "--input", "-",
                                stdin="abc\n").stdout)  # fmt: skip
    assert "token_logprobs" not in plain
    proc = run_main("score", "--path", str(ckpt), "--input", "-", "--reference", str(ckpt),
                    stdin="abc\n", check=False)  # fmt: skip
    assert proc.returncode == 2 and "this checkpoint is task 'lm'" in proc.stderr


def test_score_module_does_not_import_torch():
    code = "import sys, rnnkit_cli.score; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_ensemble_scores_through_encode_and_step(mt):
    ckpt = str(mt / "ckpt" / "checkpoint_best.pt")
    args = ["--input", str(mt / "valid.src"), "--reference", str(mt / "valid.tgt")]
    single = run_main("score", "--path", ckpt, *args).stdout.splitlines()
    twice = run_main("score", "--path", f"{ckpt}:{ckpt}", *args).stdout.splitlines()
    one, two = ([json.loads(line)["logprob"] for line in out] for out in (single, twice))
    assert two == pytest.approx(one, abs=1e-4)  # the mean of two equal models is the model
