"""Translation through the installed ``rnnkit``: the toy date task is learned, decoded from
binarized data and from stdin (line-aligned, streaming), scored, and bad input is handled."""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

import rnnkit
from rnnkit.errors import RnnkitError
from rnnkit.training.precision import cpu_has_bf16
from tests.helpers import run_main, run_rnnkit

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
MODEL = ["--arch", "attention_seq2seq", "--encoder-embed-dim", "32", "--encoder-hidden-size",
         "64", "--decoder-embed-dim", "32", "--decoder-hidden-size", "64",
         "--encoder-bidirectional", "true"]  # fmt: skip


def run(rnnkit_bin: str, *args: str, stdin: str | bytes | None = None, check: bool = True):
    return run_rnnkit(rnnkit_bin, *args, stdin=stdin, check=check, timeout=600)


@pytest.fixture(scope="module")
def toy(tmp_path_factory, rnnkit_bin):
    """The date task (4,000 pairs) trained for 8 epochs: the learning test and every decoding
    test below share it."""
    root = tmp_path_factory.mktemp("dates")
    script = REPO / "examples" / "translation" / "toy_dates.py"
    subprocess.run([sys.executable, str(script), str(root / "raw"), "--train", "4000"], check=True)
    raw = root / "raw"
    run(rnnkit_bin, "preprocess", "--task", "translation", "-s", "src", "-t", "tgt",
        "--trainpref", str(raw / "train"), "--validpref", str(raw / "valid"),
        "--testpref", str(raw / "test"), "--destdir", str(root / "data"))  # fmt: skip
    run(rnnkit_bin, "train", str(root / "data"), *MODEL, "--save-dir", str(root / "ckpt"),
        "--optimizer", "adam", "--lr", "0.01", "--batch-size", "32", "--max-epoch", "8",
        "--clip-norm", "1", "--threads", "1", "--no-epoch-checkpoints")  # fmt: skip
    return root


def test_the_toy_task_is_learned(toy, rnnkit_bin):
    out = run(rnnkit_bin, "generate", "--path", str(toy / "ckpt" / "checkpoint_best.pt"),
              "--input", str(toy / "raw" / "test.src"), "--beam", "1").stdout  # fmt: skip
    hyps = out.splitlines()
    refs = (toy / "raw" / "test.tgt").read_text().splitlines()
    assert len(hyps) == len(refs) == 500
    exact = sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs)
    assert exact >= 0.95


def test_binarized_generate_prints_fairseq_lines_and_sacrebleu(toy, rnnkit_bin):
    ckpt = str(toy / "ckpt" / "checkpoint_best.pt")
    out = run(rnnkit_bin, "generate", str(toy / "data"), "--path", ckpt, "--gen-subset", "test",
              "--beam", "3", "--nbest", "2", "--print-alignment").stdout.splitlines()  # fmt: skip
    kinds = {p: [line for line in out if line.startswith(p)] for p in "STHDPA"}
    assert len(kinds["S"]) == len(kinds["T"]) == 500
    assert len(kinds["H"]) == len(kinds["D"]) == len(kinds["P"]) == len(kinds["A"]) == 1000
    best: dict[int, str] = {}
    for line in kinds["D"]:
        tag, _, text = line.split("\t")
        best.setdefault(int(tag[2:]), text)
    refs = (toy / "raw" / "test.tgt").read_text().splitlines()
    expected = sacrebleu.corpus_bleu([best[i] for i in range(500)], [refs])
    assert out[-1].startswith("Generate test with beam=3: BLEU|nrefs:1")
    assert f"= {expected.score:.1f} " in out[-1]


def test_stdin_gives_one_line_per_line_in_order(toy, rnnkit_bin):
    ckpt = str(toy / "ckpt" / "checkpoint_best.pt")
    long_line = " ".join(["1"] * 40)
    lines = ["monday , 1 may 1 9 9 8", "", long_line, "the 3 rd of june 2 0 0 1", ""]
    stdin = "\n".join(lines) + "\n"
    for extra in ([], ["--buffer-size", "2"], ["--buffer-size", "1"]):
        proc = run(rnnkit_bin, "generate", "--path", ckpt, "-i", "-",
                   "--max-source-positions", "20", *extra, stdin=stdin)  # fmt: skip
        out = proc.stdout.split("\n")
        assert out[:-1] == [out[0], "", out[2], "2 0 0 1 - 0 6 - 0 3", ""] and out[-1] == ""
        assert out[0] == "1 9 9 8 - 0 5 - 0 1"
        assert "<stdin>:3: 41 source tokens exceed --max-source-positions 20; truncated" in (
            proc.stderr
        )
    skipped = run(rnnkit_bin, "generate", "--path", ckpt, "-i", "-", "--max-source-positions",
                  "20", "--skip-invalid-size-inputs", stdin=stdin).stdout.split("\n")  # fmt: skip
    assert skipped[2] == "" and len(skipped) == 6


def test_amp_bf16_decodes_alike_and_fp16_falls_back_on_cpu(toy, rnnkit_bin):
    ckpt = str(toy / "ckpt" / "checkpoint_best.pt")
    args = ["generate", "--path", ckpt, "--input", str(toy / "raw" / "test.src"), "--beam", "3"]
    fp32 = run(rnnkit_bin, *args).stdout.splitlines()
    bf16 = run(rnnkit_bin, *args, "--amp", "bf16")
    assert "decoding under bf16 autocast on cpu" in bf16.stderr
    # Where oneDNN has no bf16 the recurrent layers run in fp32, with one warning that says so.
    warned = bf16.stderr.count("no native bf16 (AVX-512-BF16 or AMX); the recurrent layers run")
    assert warned == (0 if cpu_has_bf16() else 1)
    lines = bf16.stdout.splitlines()
    assert len(lines) == 500
    assert sum(a == b for a, b in zip(fp32, lines, strict=True)) >= 475  # rounding, not garbage
    fp16 = run(rnnkit_bin, *args, "--amp", "fp16")
    assert "--amp fp16 needs CUDA; running in fp32" in fp16.stderr
    assert fp16.stdout.splitlines() == fp32


def test_invalid_utf8_is_replaced_with_a_warning(toy, rnnkit_bin):
    proc = run(rnnkit_bin, "generate", "--path", str(toy / "ckpt" / "checkpoint_best.pt"), "-i",
               "-", stdin=b"3 june 1 9 9 9\n\xff 3 june 1 9 9 9\n")  # fmt: skip
    assert proc.stdout.decode().count("\n") == 2
    assert "<stdin>:2: invalid UTF-8" in proc.stderr.decode()


def test_buffer_size_one_answers_before_the_next_line_is_read(toy, rnnkit_bin):
    proc = subprocess.Popen(
        [rnnkit_bin, "generate", "--path", str(toy / "ckpt" / "checkpoint_best.pt"), "-i", "-",
         "--buffer-size", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        for src, want in [("1 may 1 9 9 8", "1 9 9 8 - 0 5 - 0 1"), ("", "")]:
            proc.stdin.write(src + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready, "no output while stdin is still open"
            assert proc.stdout.readline() == want + "\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_output_file_plots_and_replace_unk(toy, rnnkit_bin, tmp_path):
    out, plots = tmp_path / "hyp.txt", tmp_path / "plots"
    run(rnnkit_bin, "generate", "--path", str(toy / "ckpt" / "checkpoint_best.pt"), "-i", "-",
        "--output", str(out), "--plot-attention", str(plots), "--replace-unk",
        stdin="1 may 1 9 9 8\n2 june 2 0 0 2\n")  # fmt: skip
    assert out.read_text().count("\n") == 2
    assert sorted(p.name for p in plots.iterdir()) == ["line1.png", "line2.png"]
    assert (plots / "line1.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".hyp.txt.*"))  # the temp file was renamed


def test_bad_requests_are_one_line_errors(toy, tmp_path):  # in-process: one command each
    ckpt = str(toy / "ckpt" / "checkpoint_best.pt")
    wide = run_main("generate", "--path", ckpt, "-i", "-", "--beam", "500",
                    stdin="1 may 1 9 9 8\n", check=False)  # fmt: skip
    assert wide.returncode == 2 and "wider than the target vocabulary" in wide.stderr
    neither = run_main("generate", "--path", ckpt, check=False)
    assert neither.returncode == 2 and "--input" in neither.stderr
    lm_text = tmp_path / "lm.txt"
    lm_text.write_text("a b c\n" * 20)
    run_main("preprocess", "--task", "lm", "--trainpref", str(lm_text), "--validpref",
             str(lm_text), "--destdir", str(tmp_path / "lm"))  # fmt: skip
    run_main("train", str(tmp_path / "lm"), "--arch", "rnn_lm", "--embed-dim", "4",
             "--hidden-size", "4", "--save-dir", str(tmp_path / "lmck"), "--max-update", "1",
             "--batch-size", "2", "--bptt", "4")  # fmt: skip
    other = run_main("generate", "--path", str(tmp_path / "lmck" / "checkpoint_last.pt"),
                     "-i", "-", stdin="a\n", check=False)  # fmt: skip
    assert other.returncode == 2
    assert other.stderr.count("\n") == 1 and "a 'lm' checkpoint" in other.stderr


def test_broken_pipe_is_quiet(toy, rnnkit_bin):
    cmd = (f"yes '1 may 1 9 9 8' | head -300 | {rnnkit_bin} generate --path "
           f"{toy / 'ckpt' / 'checkpoint_best.pt'} -i - --buffer-size 8 | head -1")  # fmt: skip
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.stdout == "1 9 9 8 - 0 5 - 0 1\n"
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


def test_python_api_translates_like_the_command_line(toy, rnnkit_bin):
    model = rnnkit.load(toy / "ckpt" / "checkpoint_best.pt")
    assert model.translate(["1 may 1 9 9 8", ""], beam=2) == ["1 9 9 8 - 0 5 - 0 1", ""]
    with pytest.raises(RnnkitError, match="sample\\(\\) needs a model of task lm"):
        model.sample("x")


def test_sampling_is_seeded_and_nbest_joins_hypotheses(toy, rnnkit_bin):
    ckpt = str(toy / "ckpt" / "checkpoint_best.pt")
    args = ["generate", "--path", ckpt, "-i", "-", "--sampling", "--beam", "3", "--nbest", "3",
            "--temperature", "1.5", "--seed", "7"]  # fmt: skip
    first = run(rnnkit_bin, *args, stdin="1 may 1 9 9 8\n").stdout
    assert first == run(rnnkit_bin, *args, stdin="1 may 1 9 9 8\n").stdout
    assert first.count("\n") == 1 and first.count(" ||| ") == 2
