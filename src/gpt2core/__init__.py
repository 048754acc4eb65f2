"""gpt2core: a NumPy GPT-2 inference engine, verified stage by stage against Hugging Face transformers."""

from .config import GPT2Config
from .errors import CheckpointError, ConfigError, GPT2CoreError, InputError, ReferencesError, TokenizerError
from .loading import load
from .model import GPT2, checkpoint_names

__version__ = "0.1.0"
__all__ = [
    "GPT2", "GPT2Config", "load", "checkpoint_names",
    "GPT2CoreError", "ConfigError", "CheckpointError", "TokenizerError", "InputError", "ReferencesError",
]  # fmt: skip
