"""Shared fixtures and the test tiers.

Tiers (folders mirror the package; markers are declared in pyproject.toml):

- ``tests/unit``: the library called directly, tiny inputs, no subprocesses; each well under a
  second.
- ``tests/cli``: the command line in-process through ``typer.testing.CliRunner`` (or
  ``rnnkit_cli.main.main`` where the exit code and the one-line error matter).
- ``tests/e2e`` (markers ``e2e`` and ``slow``, set for the folder): the installed ``rnnkit``
  command in a subprocess, as a user runs it (``tests.helpers.run_rnnkit``), including
  third-party plugins found through entry points and ``--user-dir``. A check there that needs
  only one command's exit code and output runs it in-process (``tests.helpers.run_main``): each
  subprocess pays seconds of Python and torch start-up.
- marker ``shared_data``: reads ``../shared/data`` beside the repository (PTB, Multi30k, ATIS,
  Tiny Shakespeare). Such tests skip with a reason where that folder is absent, so the suite
  passes on a bare checkout: ``pytest -m "not shared_data"`` runs only self-contained tests.
- marker ``slow``: trains (calls ``fit()`` or runs ``rnnkit train``) or otherwise takes seconds.
  ``pytest -m "not slow"`` is the fast tier to run while editing; ``make test`` runs everything.

Every test runs in :func:`isolated_process_state`: what it registers (``--user-dir``, plugins,
``REGISTRY.register``) and the reporter it installs are undone afterwards, so tests cannot leak
into each other.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Tiny models run fastest on one thread, and OpenMP's spinning threads slow down several-fold
# when another process is busy on a 2-core machine. Set before torch loads, so the subprocesses
# of the e2e tests (the installed `rnnkit`) inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from rnnkit.registry import scoped_registries  # noqa: E402
from rnnkit.reporting import get_reporter, set_reporter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"
FIXTURES = REPO / "tests" / "fixtures"


def shared_path(*parts: str) -> Path:
    """A path under ``../shared/data``; skips the calling test with a reason if it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path.resolve()} (clone shared/ beside the repo)")
    return path


@pytest.fixture
def shared_data() -> Path:
    """The ``../shared/data`` folder (tests using it should carry ``@pytest.mark.shared_data``)."""
    return shared_path()


@pytest.fixture(scope="session")
def rnnkit_bin() -> str:
    """The installed ``rnnkit`` command of the running environment."""
    beside = Path(sys.executable).parent / "rnnkit"
    found = str(beside) if beside.exists() else shutil.which("rnnkit")
    if found is None:
        pytest.skip("the rnnkit command is not installed (pip install -e .)")
    return found


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under ``tests/e2e`` is ``e2e`` and ``slow``: each command it runs pays Python's
    and torch's start-up in a fresh process."""
    e2e = REPO / "tests" / "e2e"
    for item in items:
        if e2e in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_process_state():
    """Undo a test's registrations (:func:`rnnkit.registry.scoped_registries`) and put back the
    reporter it found (``rnnkit_cli.main.main`` installs a rich one for the process)."""
    reporter = get_reporter()
    with scoped_registries():
        yield
    set_reporter(reporter)
