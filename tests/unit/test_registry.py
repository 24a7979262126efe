"""Registry: registration, unknown names listing valid ones, and plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rnnkit.errors import RnnkitError
from rnnkit.registry import Registry, import_user_dir, suggest
from rnnkit.tokenizers import TOKENIZER_REGISTRY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_register_get_and_describe():
    reg: Registry[type] = Registry("widget")

    @reg.register("small")
    class Small:
        """A small widget.

        More text."""

    assert reg.get("small") is Small
    assert reg.entry("small").description == "A small widget."
    assert "small" in reg and reg.names() == ["small"]
    assert [e.name for e in reg] == ["small"]


def test_unknown_name_lists_valid_ones_and_suggests():
    reg: Registry[int] = Registry("widget")
    reg.add("lstm", 1)
    reg.add("gru", 2)
    with pytest.raises(RnnkitError) as e:
        reg.get("lsmt")
    assert str(e.value) == "unknown widget 'lsmt'; did you mean 'lstm'? (valid: gru, lstm)"
    assert suggest("zzz", ["lstm"]) == ""


def test_registering_a_name_twice_is_an_error():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    reg.add("a", 1)  # the same object again is harmless (re-import)
    with pytest.raises(RnnkitError, match="registered twice"):
        reg.add("a", 2)


def test_user_dir_import_registers_its_components(tmp_path):
    name = f"userdir_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from rnnkit.tokenizers import TOKENIZER_REGISTRY, SpaceTokenizer\n"
        f"TOKENIZER_REGISTRY.add({name!r}, SpaceTokenizer, 'test')\n"
    )
    assert import_user_dir(pkg) == name
    assert TOKENIZER_REGISTRY.get(name) is not None
    assert import_user_dir(pkg) == name  # a second load is a no-op


def test_user_dir_errors(tmp_path):
    with pytest.raises(RnnkitError, match="expected a package folder with __init__.py"):
        import_user_dir(tmp_path)
    broken = tmp_path / f"broken_{uuid.uuid4().hex[:8]}"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ValueError('boom')\n")
    with pytest.raises(RnnkitError, match="import failed: boom"):
        import_user_dir(broken)


@pytest.mark.slow
def test_entry_point_plugin_is_loaded_from_its_dist_info():
    # A subprocess, so the plugin's registrations do not leak into this test session.
    env = {**os.environ, "PYTHONPATH": str(FIXTURES / "plugin_pkg")}
    code = (
        "from rnnkit.registry import load_entry_point_plugins\n"
        "from rnnkit.tokenizers import TOKENIZER_REGISTRY\n"
        "print(load_entry_point_plugins(), 'reverse_demo' in TOKENIZER_REGISTRY)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "'demo'" in out.stdout and out.stdout.strip().endswith("True")
