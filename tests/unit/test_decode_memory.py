"""Decoding memory (issue 16.5): search keeps attention history only when something reads it,
and a raw ``--buffer-size`` buffer is decoded in ``--batch-size`` groups of similar length, so
the rows of a step are bounded, with the hypotheses a search of each group finds, in order."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest

import rnnkit
from rnnkit.generation import search as search_module
from rnnkit.generation.search import SearchConfig
from rnnkit.tasks.inference import GenerateOptions, LinesRequest
from rnnkit.tasks.inference.translation import _prepared
from tests.unit.test_inference_objects import write_checkpoint
from tests.unit.test_translation_task import TINY, make_pairs

LINES = ["a b c", "f", "a a b b c c d", "", "e d", "b c d e f a", "c", "d d", "a f", "e"]


@pytest.fixture(scope="module")
def translator(tmp_path_factory) -> rnnkit.Pretrained:
    root = tmp_path_factory.mktemp("decode_memory")
    data = make_pairs(root)
    return rnnkit.load(write_checkpoint(data, "attention_seq2seq", TINY, root / "mt.pt"), "cpu")


def search(translator, cfg: SearchConfig, lines=LINES):
    task = translator.task
    ids = [task.encode_source(line) for line in lines if line]
    return task.search(translator.model, ids, cfg, translator.device)


def test_search_without_attention_finds_the_same_hypotheses(translator):
    cfg = SearchConfig(beam=3, nbest=3, max_len_b=6)
    kept, dropped = search(translator, cfg), search(translator, replace(cfg, attention=False))
    assert [len(h) for h in kept] == [len(h) for h in dropped]
    for a, b in zip(sum(kept, []), sum(dropped, []), strict=True):
        assert a.tokens.tolist() == b.tokens.tolist() and a.score == b.score
        assert a.positional_scores.tolist() == b.positional_scores.tolist()
        assert a.attention is not None and a.alignment is not None
        assert b.attention is None and b.alignment is None


def test_search_keeps_no_attention_history_when_not_asked(translator, monkeypatch):
    histories = []
    advance = search_module._advance

    def spy(*args, **kwargs):
        active, order = advance(*args, **kwargs)
        histories.append(active.attn)
        return active, order

    monkeypatch.setattr(search_module, "_advance", spy)
    search(translator, SearchConfig(beam=2, max_len_b=5, attention=False))
    assert histories and all(h is None for h in histories)
    histories.clear()
    search(translator, SearchConfig(beam=2, max_len_b=5))
    assert any(h is not None and h.dim() == 3 for h in histories)  # (N*K, t, S)


@pytest.mark.parametrize(
    "options, needed",
    [({}, False), ({"print_alignment": True}, True), ({"replace_unk": ""}, True),
     ({"plot_attention": "plots"}, True), ({"print_scores": True}, False)],
)  # fmt: skip
def test_generate_keeps_attention_only_for_what_reads_it(tmp_path, options, needed):
    if "plot_attention" in options:
        options = {"plot_attention": tmp_path / options["plot_attention"]}
    show, _ = _prepared(GenerateOptions(**options))
    assert show.search.attention is needed


def generate_lines(translator, batch_size: int, buffers, **options) -> str:
    out = io.StringIO()
    show = GenerateOptions(search=SearchConfig(beam=2, max_len_b=6), print_scores=True, **options)
    translator.generate_lines(buffers, LinesRequest(batch_size=batch_size), show, out)
    return out.getvalue()


def test_a_buffer_is_decoded_in_groups_with_the_same_output(translator, monkeypatch):
    numbered = list(enumerate(LINES, 1))
    whole = generate_lines(translator, 100, [numbered])
    rows = []
    step = translator.model.step

    def spy(prev_tokens, state):
        rows.append(prev_tokens.numel())
        return step(prev_tokens, state)

    monkeypatch.setattr(translator.model, "step", spy)
    grouped = generate_lines(translator, 3, [numbered])
    assert grouped == whole and len(grouped.splitlines()) == len(LINES)
    assert max(rows) <= 3 * 2  # batch size × beam rows a step, not 10 × 2
    one_by_one = generate_lines(translator, 1, [[line] for line in numbered])
    assert one_by_one == whole
    aligned = generate_lines(translator, 3, [numbered], print_alignment=True)
    for text, row in zip(LINES, aligned.splitlines(), strict=True):
        if text:  # hypothesis, score, alignment: the attention was kept for it
            assert re.fullmatch(r"[^\t]*\t-?[\d.]+\t(\d+-\d+ ?)*", row), row


def test_an_over_long_line_in_a_grouped_buffer_is_named_by_its_number(translator, capsys):
    out = io.StringIO()
    lines = LinesRequest(max_positions=4, batch_size=2)
    show = GenerateOptions(search=SearchConfig(beam=2, max_len_b=4))
    translator.generate_lines([list(enumerate(LINES, 1))], lines, show, out)
    err = capsys.readouterr().err
    assert "<input>:3: 8 source tokens exceed --max-source-positions 4; truncated" in err
    assert "<input>:6: 7 source tokens" in err and "<input>:1:" not in err
    assert len(out.getvalue().splitlines()) == len(LINES)
