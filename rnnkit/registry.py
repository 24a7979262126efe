"""One generic registry for everything that can be named on the command line.

Architectures, presets, tasks, criteria, optimizers, LR schedulers, tokenizers and cells each get a
:class:`Registry`. Entries register themselves with a decorator next to their class; an unknown
name raises an error that lists the valid names and suggests the closest. Third-party plugins add
entries by being imported: from the ``rnnkit.plugins`` entry-point group or from ``--user-dir``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from rnnkit.errors import RnnkitError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its name and a one-line description."""

    name: str
    obj: T
    description: str
    origin: str = ""  # the module whose import registered it (see _importing_module)


def suggest(name: str, choices: list[str]) -> str:
    """A ``did you mean`` hint for ``name`` among ``choices`` (empty when nothing is close)."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def first_line(doc: str | None) -> str:
    """The first non-empty line of a docstring, or an empty string."""
    for line in (doc or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


class Registry(Generic[T]):
    """Name → object mapping for one kind of component (``kind`` appears in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        _REGISTRIES.append(self)

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator: register ``obj`` as ``name``; the description defaults to its docstring."""

        def wrap(obj: T) -> T:
            self.add(name, obj, description)
            return obj

        return wrap

    def add(self, name: str, obj: T, description: str | None = None) -> None:
        """Register ``obj`` under ``name``; a second registration of one name is an error."""
        if name in self._entries and self._entries[name].obj is not obj:
            raise RnnkitError(f"{self.kind} {name!r} is registered twice")
        desc = description if description is not None else first_line(getattr(obj, "__doc__", None))
        self._entries[name] = Entry(name, obj, desc, _importing_module())

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name lists the valid ones."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        """The :class:`Entry` for ``name``; an unknown name lists the valid ones."""
        try:
            return self._entries[name]
        except KeyError:
            names = sorted(self._entries)
            raise RnnkitError(
                f"unknown {self.kind} {name!r}{suggest(name, names)} "
                f"(valid: {', '.join(names) or 'none registered'})"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)


_REGISTRIES: list[Registry] = []  # every registry made, for scoped_registries()


def registries() -> list[Registry]:
    """Every registry made so far (by the modules imported so far), oldest first."""
    return list(_REGISTRIES)


PLUGIN_GROUP = "rnnkit.plugins"
_loaded_plugins: set[str] = set()


def _importing_module() -> str:
    """The module whose top-level code is running this registration: the innermost frame
    executing a module body. A plugin's ``register_model`` makes entries whose objects live in
    rnnkit (an architecture of the model's defaults), but they belong to the plugin."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


def _ours(module: str) -> bool:
    return module.split(".")[0] in ("rnnkit", "rnnkit_cli")


def is_builtin(entry: Entry) -> bool:
    """Whether ``entry`` was registered by rnnkit itself (not by a plugin or a test)."""
    return _ours(entry.origin or getattr(entry.obj, "__module__", None) or "")


def plugins_loaded() -> bool:
    """Whether an entry-point plugin or a ``--user-dir`` folder has been imported."""
    return bool(_loaded_plugins)


@contextlib.contextmanager
def scoped_registries() -> Iterator[None]:
    """Forget, at the end of the ``with`` block, what was registered inside it (tests: one test's
    registrations must not leak into the next). Plugin and ``--user-dir`` modules imported inside
    are dropped with their entries, so loading them again registers them again. When one of
    rnnkit's own modules was first imported inside, entries of rnnkit objects stay (the module
    stays imported and would not register them again)."""
    saved = [(r, dict(r._entries)) for r in _REGISTRIES]
    plugins, modules = set(_loaded_plugins), set(sys.modules)
    try:
        yield
    finally:
        # "ep:package.module:attr" and "dir:/path/to/package" name the packages loaded inside
        keys = [k.split(":", 2)[1] for k in _loaded_plugins - plugins]
        packages = {Path(k).name if k.startswith("/") else k.split(".")[0] for k in keys}
        imported_ours = any(_ours(m) for m in set(sys.modules) - modules)
        for registry, entries in saved:
            for name, entry in list(registry._entries.items()):
                module = entry.origin or getattr(entry.obj, "__module__", None) or ""
                if name in entries or (imported_ours and _ours(module)):
                    continue
                del registry._entries[name]
                if module not in modules:
                    packages.add(module)
        for name in set(sys.modules) - modules:
            if any(name == p or name.startswith(p + ".") for p in packages) and not _ours(name):
                del sys.modules[name]
        _loaded_plugins.intersection_update(plugins)


def load_entry_point_plugins() -> list[str]:
    """Import every module advertised in the ``rnnkit.plugins`` entry-point group (once)."""
    loaded = []
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        key = f"ep:{ep.value}"
        if key in _loaded_plugins:
            continue
        try:
            ep.load()
        except Exception as e:  # a broken plugin must say which one it is
            raise RnnkitError(f"plugin {ep.name!r} ({ep.value}) failed to load: {e}") from e
        _loaded_plugins.add(key)
        loaded.append(ep.name)
    return loaded


def import_user_dir(user_dir: str | Path) -> str:
    """Import ``user_dir`` as a package (its ``__init__.py`` registers components); return its name.

    As in fairseq, the folder's own name becomes the module name, so it must not shadow an
    installed package.
    """
    path = Path(user_dir).resolve()
    init = path / "__init__.py"
    if not init.is_file():
        raise RnnkitError(f"--user-dir {user_dir}: expected a package folder with __init__.py")
    key = f"dir:{path}"
    if key in _loaded_plugins:
        return path.name
    if path.name in sys.modules:
        raise RnnkitError(f"--user-dir {user_dir}: module name {path.name!r} is already taken")
    spec = importlib.util.spec_from_file_location(
        path.name, init, submodule_search_locations=[str(path)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[path.name]
        raise RnnkitError(f"--user-dir {user_dir}: import failed: {e}") from e
    _loaded_plugins.add(key)
    return path.name


def load_plugins(user_dirs: list[str] | None = None) -> None:
    """Load entry-point plugins and the given ``--user-dir`` folders."""
    load_entry_point_plugins()
    for d in user_dirs or []:
        import_user_dir(d)
