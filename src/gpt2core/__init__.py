"""gpt2core: a NumPy GPT-2 inference engine, verified stage by stage against Hugging Face transformers.

  gpt2core.engine         the engine (imports nothing else of gpt2core)
  gpt2core.verification   references, comparisons, verification modes, the fault catalogue; sees an
                          engine only through its subject protocol
  cli, report, audit, bench, mutation, init_model: the tools on top
"""

from .engine.config import GPT2Config
from .engine.loading import load
from .engine.model import GPT2, checkpoint_names
from .errors import CheckpointError, ConfigError, GPT2CoreError, InputError, ReferencesError, TokenizerError

__version__ = "0.1.0"
__all__ = [
    "GPT2", "GPT2Config", "load", "checkpoint_names",
    "GPT2CoreError", "ConfigError", "CheckpointError", "TokenizerError", "InputError", "ReferencesError",
]  # fmt: skip
