"""The inputs a reference set is captured on: token ids, a left-padding mask and position ids per case."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ReferencesError
from .model_dir import ModelDir

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it sleeps under the old oak tree."


@dataclass
class Case:
    """One input of a reference set: ids [B, T], optional 0/1 mask [B, T] (left padding), positions [B, T]."""

    name: str
    input_ids: np.ndarray
    attention_mask: np.ndarray | None = None
    texts: list[str] | None = None

    @property
    def position_ids(self) -> np.ndarray:
        """Positions as transformers' generate makes them: padding does not advance (cumsum - 1, 1 at padding)."""
        mask = np.ones_like(self.input_ids) if self.attention_mask is None else self.attention_mask
        return transformers_positions(mask)


def transformers_positions(mask: np.ndarray) -> np.ndarray:
    """Position ids for a [B, T] 0/1 mask as transformers' generate makes them: cumsum - 1, and 1 at padding.

    Written here, apart from the engine's own (gpt2core.engine.model.positions_from_mask), so a reference
    never takes its positions from the code under test.
    """
    pos = np.cumsum(mask, axis=1) - 1
    pos[mask == 0] = 1
    return pos


def text_case(name: str, tokenizer, texts: list[str]) -> Case:
    """A case from prompts; several prompts of different lengths become one left-padded batch."""
    rows = [tokenizer.encode(t) for t in texts]
    if not all(rows):
        raise ReferencesError(f"case {name}: a prompt encodes to no tokens ({texts!r})")
    T = max(len(r) for r in rows)
    pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    ids = np.array([[pad] * (T - len(r)) + r for r in rows], dtype=np.int64)
    mask = np.array([[0] * (T - len(r)) + [1] * len(r) for r in rows], dtype=np.int64)
    return Case(name, ids, None if mask.all() else mask, list(texts))


def random_case(name: str, length: int, vocab_size: int, seed: int) -> Case:
    return Case(name, np.random.default_rng(seed).integers(0, vocab_size, (1, length)))


def default_cases(config, tokenizer, full_length: bool = False) -> list[Case]:
    """1 token, 2 tokens ("Hello." = [15496, 13]), a sentence, 128 random tokens (fewer if n_positions is
    smaller), a left-padded batch of three prompts, and with full_length all n_positions positions."""
    cases = [
        text_case("one_token", tokenizer, ["Hello"]),
        text_case("hello", tokenizer, ["Hello."]),
        text_case("sentence", tokenizer, [SENTENCE]),
        random_case("random_tokens", min(128, config.n_positions), config.vocab_size, seed=128),
        text_case("padded_batch", tokenizer, [SENTENCE, "Hello.", "Attention is all you need"]),
    ]
    return cases + ([full_length_case(config)] if full_length else [])


def full_length_case(config) -> Case:
    """All n_positions positions of random tokens (--full-length)."""
    return random_case(f"full_{config.n_positions}", config.n_positions, config.vocab_size, seed=1024)


def cases_for(model_dir: ModelDir, prompts: list[str] | None = None, full_length: bool = False) -> list[Case]:
    """The built-in cases for the model (or one case per prompt, plus their left-padded batch), with full_length
    a case of all n_positions positions after them."""
    if not prompts:
        return default_cases(model_dir.config, model_dir.tokenizer, full_length=full_length)
    cases = [text_case(f"prompt{i}", model_dir.tokenizer, [text]) for i, text in enumerate(prompts)]
    if len(prompts) > 1:
        cases.append(text_case("batch", model_dir.tokenizer, list(prompts)))  # left-padded when lengths differ
    too_long = [c for c in cases if c.input_ids.shape[1] > model_dir.config.n_positions]
    if too_long:
        raise ReferencesError(f"case {too_long[0].name}: {too_long[0].input_ids.shape[1]} tokens, more than the model's "
                              f"n_positions {model_dir.config.n_positions}")  # fmt: skip
    return cases + ([full_length_case(model_dir.config)] if full_length else [])
