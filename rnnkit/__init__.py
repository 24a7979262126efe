"""rnnkit: recurrent sequence models (RNN, LSTM, GRU) trained, decoded and scored from the shell.

The public API is what ``__all__`` lists; everything else may change between releases.
"""

from rnnkit.data.binarized import DatasetWriter, IndexedDataset
from rnnkit.dictionary import Dictionary
from rnnkit.errors import RnnkitError
from rnnkit.models import ARCH_REGISTRY, MODEL_REGISTRY, register_architecture, register_model
from rnnkit.registry import Registry
from rnnkit.tokenizers import TOKENIZER_REGISTRY, Tokenizer

__version__ = "0.1.0"

__all__ = [
    "ARCH_REGISTRY",
    "MODEL_REGISTRY",
    "TOKENIZER_REGISTRY",
    "DatasetWriter",
    "Dictionary",
    "IndexedDataset",
    "Registry",
    "RnnkitError",
    "Tokenizer",
    "__version__",
    "register_architecture",
    "register_model",
]
