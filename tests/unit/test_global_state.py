"""Library calls leave the process as they found it: torch's generators and thread count, the
reporter, the registries (issue 12, item 5)."""

from __future__ import annotations

import sys
import types
import uuid

import pytest
import torch

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.registry import import_user_dir, scoped_registries
from rnnkit.reporting import Reporter, get_reporter, using_reporter
from rnnkit.tasks import load_task
from rnnkit.tokenizers import TOKENIZER_REGISTRY, SpaceTokenizer
from rnnkit.training import run as run_module
from rnnkit.training.config import TrainConfig
from rnnkit.training.loop import build_run, fit
from rnnkit.training.rng import seeded_rng_state
from tests.unit.test_training import TINY, make_char_data, make_run, params


def test_build_run_leaves_torch_generators_threads_and_reporter_alone(tmp_path):
    torch.manual_seed(1234)
    rng, threads, reporter = torch.get_rng_state(), torch.get_num_threads(), get_reporter()
    make_run(tmp_path, seed=7, threads=threads + 1)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == threads  # --threads is the command line's to set
    assert get_reporter() is reporter and not reporter.quiet


@pytest.mark.slow
def test_fit_gives_the_generators_back_and_its_numbers_do_not_depend_on_them(tmp_path):
    trained = []
    for name, outside in (("a", 1), ("b", 2)):
        torch.manual_seed(outside)  # whatever the caller did with torch's generators
        before = torch.get_rng_state()
        run = make_run(tmp_path, name, model={"dropout": 0.5}, max_epoch=1)
        fit(run)
        assert torch.equal(torch.get_rng_state(), before)
        trained.append(params(run))
    for k, v in trained[0].items():
        assert torch.equal(v, trained[1][k]), k


def test_workers_but_rank_0_build_with_a_quiet_copy_of_the_reporter(tmp_path, monkeypatch):
    data = make_char_data(tmp_path / "data")
    monkeypatch.setattr(run_module.distributed, "rank", lambda: 1)
    reporter = Reporter()
    cfg = resolve(TrainConfig, {"batch_size": 4, "bptt": 6})
    run = build_run(cfg, load_task(data), "rnn_lm", [TINY], tmp_path / "r1", reporter=reporter)
    assert run.reporter.quiet and not reporter.quiet
    assert get_reporter() is not run.reporter


def test_rank_1_draws_the_weights_of_rank_0_and_dropout_of_its_own(tmp_path, monkeypatch):
    first = make_run(tmp_path, "r0")
    monkeypatch.setattr(run_module.distributed, "rank", lambda: 1)
    second = make_run(tmp_path, "r1")
    for k, v in params(first).items():
        assert torch.equal(v, params(second)[k]), k
    assert not torch.equal(first.rng["torch"], second.rng["torch"])
    assert torch.equal(second.rng["torch"], seeded_rng_state(3 + 1)["torch"])


def test_using_reporter_puts_the_previous_one_back_also_on_errors():
    before, mine = get_reporter(), Reporter(quiet=True)
    with pytest.raises(ValueError), using_reporter(mine):
        assert get_reporter() is mine
        raise ValueError
    assert get_reporter() is before


def test_scoped_registries_forget_registrations_and_user_dirs(tmp_path):
    name = f"scoped_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from rnnkit.tokenizers import TOKENIZER_REGISTRY, SpaceTokenizer\n"
        f"TOKENIZER_REGISTRY.add({name!r}, type('T', (SpaceTokenizer,), {{}}), 'test')\n"
    )
    for _ in range(2):  # the second import registers again: the first was forgotten entirely
        with scoped_registries():
            TOKENIZER_REGISTRY.add("scoped_plain", SpaceTokenizer, "test")
            import_user_dir(pkg)
            assert name in TOKENIZER_REGISTRY and "scoped_plain" in TOKENIZER_REGISTRY
        assert name not in TOKENIZER_REGISTRY and "scoped_plain" not in TOKENIZER_REGISTRY
    with pytest.raises(RnnkitError, match="unknown tokenizer"):
        TOKENIZER_REGISTRY.get(name)


def test_a_registration_left_behind_by_a_test(tmp_path):
    TOKENIZER_REGISTRY.add("left_behind", SpaceTokenizer, "test")  # no scope of its own


def test_is_undone_before_the_next_test():
    # conftest's autouse fixture scopes every test (the one above must run first)
    assert "left_behind" not in TOKENIZER_REGISTRY


def test_entries_of_rnnkit_modules_first_imported_inside_a_scope_stay(monkeypatch):
    probe = types.ModuleType("rnnkit._scope_probe")  # stands for a lazily imported rnnkit module
    tokenizer = type("ProbeTokenizer", (SpaceTokenizer,), {"__module__": probe.__name__})
    with scoped_registries():
        monkeypatch.setitem(sys.modules, probe.__name__, probe)
        # registered by the probe module's own top-level code, as an import would run it
        probe.__dict__.update(REGISTRY=TOKENIZER_REGISTRY, tokenizer=tokenizer)
        exec(compile('REGISTRY.add("scope_probe", tokenizer, "test")', "<probe>", "exec"),
             probe.__dict__)  # fmt: skip
    assert TOKENIZER_REGISTRY.get("scope_probe") is tokenizer  # its module would not register again
    TOKENIZER_REGISTRY._entries.pop("scope_probe")
