"""The exceptions the engine raises. Every message names the file, tensor, field or argument at fault."""


class GPT2CoreError(Exception):
    """Base class of every error gpt2core raises on purpose."""


class ConfigError(GPT2CoreError, ValueError):
    """`config.json` is missing, malformed, or asks for something GPT-2 does not do."""


class CheckpointError(GPT2CoreError, ValueError):
    """The model directory or its weights file is missing, malformed or inconsistent with the config."""


class TokenizerError(GPT2CoreError, ValueError):
    """The tokenizer files (`vocab.json`, `merges.txt`) are missing or malformed."""


class InputError(GPT2CoreError, ValueError):
    """Arguments of a forward or generate call are out of range, of the wrong type or the wrong shape."""
