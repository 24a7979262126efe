"""rnnkit: recurrent sequence models (RNN, LSTM, GRU) trained, decoded and scored from the shell.

The public API is what ``__all__`` lists (pinned by tests/unit/test_public_api.py); everything
else may change between releases. ``rnnkit.load(path)`` is the entry point for using a trained
model from Python.
"""

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

__version__ = "0.1.0"

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
