"""Every exception gpt2core raises on purpose, importable from one place."""

from .engine.errors import CheckpointError, ConfigError, GPT2CoreError, InputError, TokenizerError
from .verification.errors import DumpError, MemoryNeeded, ReferencesError, SubjectError

__all__ = ["GPT2CoreError", "ConfigError", "CheckpointError", "TokenizerError", "InputError", "ReferencesError",
           "SubjectError", "DumpError", "MemoryNeeded"]  # fmt: skip
