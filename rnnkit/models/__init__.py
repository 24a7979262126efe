"""Model and architecture registries.

A *model* is an ``nn.Module`` class with a frozen config dataclass (``config_class``), registered
with :func:`register_model`. An *architecture* is a named preset of that config, registered with
:func:`register_architecture` on a function that returns the fields it overrides (like fairseq's
named architectures, but as data). Every model is also an architecture of its own name with no
overrides. :func:`resolve_arch` merges defaults < preset < config file < command-line fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rnnkit.config import resolve
from rnnkit.errors import RnnkitError
from rnnkit.registry import Registry, first_line

MODEL_REGISTRY: Registry[type] = Registry("model")


@dataclass(frozen=True)
class Architecture:
    """A named preset: which model, and the config fields it sets."""

    model: str
    overrides: Mapping[str, Any]


ARCH_REGISTRY: Registry[Architecture] = Registry("architecture")


def register_model(name: str, task: str = "lm") -> Callable[[type], type]:
    """Class decorator: register a model (with ``config_class``) for ``task``, and an
    architecture of its name."""

    def wrap(cls: type) -> type:
        if not hasattr(cls, "config_class"):
            raise TypeError(f"model {name!r} needs a config_class dataclass")
        cls.model_name = name
        cls.task_name = task
        MODEL_REGISTRY.add(name, cls)
        ARCH_REGISTRY.add(name, Architecture(name, {}), f"{first_line(cls.__doc__)} (defaults)")
        return cls

    return wrap


def register_architecture(name: str, model: str) -> Callable[[Callable[[], dict]], Callable]:
    """Function decorator: the function returns the preset's field overrides; its docstring's
    first line is the description shown by ``rnnkit models``."""

    def wrap(fn: Callable[[], dict]) -> Callable[[], dict]:
        ARCH_REGISTRY.add(name, Architecture(model, dict(fn())), first_line(fn.__doc__))
        return fn

    return wrap


def resolve_arch(
    arch: str, *layers: Mapping[str, Any] | None, task: str | None = None
) -> tuple[type, Any]:
    """The model class and its config for ``arch``, with ``layers`` applied over the preset.

    With ``task``, an architecture of another task is a clear error.
    """
    preset = ARCH_REGISTRY.get(arch)
    cls = MODEL_REGISTRY.get(preset.model)
    if task is not None and cls.task_name != task:
        raise RnnkitError(
            f"--arch {arch} is a {cls.task_name!r} model; this data is for task {task!r}"
        )
    cfg = resolve(cls.config_class, preset.overrides, *layers, source=f"option of --arch {arch}")
    return cls, cfg


# Built-in models register themselves on import.
import rnnkit.models.rnn_lm  # noqa: F401,E402
import rnnkit.models.seq2seq  # noqa: F401,E402
import rnnkit.models.tagger  # noqa: F401,E402
