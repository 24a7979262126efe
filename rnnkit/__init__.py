"""rnnkit: recurrent sequence models (RNN, LSTM, GRU) trained, decoded and scored from the shell.

The public API is what ``__all__`` lists (pinned by tests/unit/test_public_api.py); everything
else may change between releases. ``rnnkit.load(path)`` is the entry point for using a trained
model from Python.

Names are imported on first use (PEP 562 ``__getattr__``), so ``import rnnkit`` — and every
command that needs no model, such as ``rnnkit --help`` or ``rnnkit score --sys`` — does not pay
for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "DatasetWriter": "rnnkit.data.binarized",
    "IndexedDataset": "rnnkit.data.binarized",
    "Dictionary": "rnnkit.dictionary",
    "RnnkitError": "rnnkit.errors",
    "Pretrained": "rnnkit.hub",
    "load": "rnnkit.hub",
    "ARCH_REGISTRY": "rnnkit.models",
    "MODEL_REGISTRY": "rnnkit.models",
    "register_architecture": "rnnkit.models",
    "register_model": "rnnkit.models",
    "Registry": "rnnkit.registry",
    "load_plugins": "rnnkit.registry",
    "TASK_REGISTRY": "rnnkit.tasks",
    "Task": "rnnkit.tasks.base",
    "LanguageModel": "rnnkit.tasks.inference.lm",
    "Classifier": "rnnkit.tasks.inference.tagging",
    "Tagger": "rnnkit.tasks.inference.tagging",
    "Translator": "rnnkit.tasks.inference.translation",
    "TOKENIZER_REGISTRY": "rnnkit.tokenizers",
    "Tokenizer": "rnnkit.tokenizers",
}

__all__ = [
    "ARCH_REGISTRY",
    "MODEL_REGISTRY",
    "TASK_REGISTRY",
    "TOKENIZER_REGISTRY",
    "Classifier",
    "LanguageModel",
    "Tagger",
    "Task",
    "Translator",
    "DatasetWriter",
    "Dictionary",
    "IndexedDataset",
    "Pretrained",
    "Registry",
    "RnnkitError",
    "Tokenizer",
    "__version__",
    "load",
    "load_plugins",
    "register_architecture",
    "register_model",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines public ``name`` on first access, and keep the value."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static type checkers and IDEs see the names as plain imports
    from rnnkit.data.binarized import DatasetWriter, IndexedDataset
    from rnnkit.dictionary import Dictionary
    from rnnkit.errors import RnnkitError
    from rnnkit.hub import Pretrained, load
    from rnnkit.models import ARCH_REGISTRY, MODEL_REGISTRY, register_architecture, register_model
    from rnnkit.registry import Registry, load_plugins
    from rnnkit.tasks import TASK_REGISTRY
    from rnnkit.tasks.base import Task
    from rnnkit.tasks.inference.lm import LanguageModel
    from rnnkit.tasks.inference.tagging import Classifier, Tagger
    from rnnkit.tasks.inference.translation import Translator
    from rnnkit.tokenizers import TOKENIZER_REGISTRY, Tokenizer
