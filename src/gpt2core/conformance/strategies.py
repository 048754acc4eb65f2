"""Hypothesis strategies for drawn GPT-2s: configs, weights and inputs (shared by gpt2core's own property
tests, tests/support/strategies.py, so both draw from one definition)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

SEEDS = st.integers(0, 2**32 - 1)
# initializer std: 0.02 is GPT-2's (nearly uniform attention); larger values make attention sharp
INIT_STDS = st.sampled_from([0.02, 0.2, 0.5])


@st.composite
def gpt2_configs(draw, max_layers=2, min_embd=1):
    """Small GPT-2 configs with any head count and head size (n_embd = n_head * head_dim >= min_embd)."""
    n_head = draw(st.integers(1, 4))
    head_dim = draw(st.sampled_from([d for d in (1, 2, 4, 8, 16) if n_head * d >= min_embd]))
    vocab = draw(st.integers(8, 300))
    return dict(
        vocab_size=vocab,
        n_positions=draw(st.integers(8, 40)),
        n_embd=n_head * head_dim,
        n_head=n_head,
        n_layer=draw(st.integers(1, max_layers)),
        layer_norm_epsilon=draw(st.sampled_from([1e-5, 1e-6, 1e-3])),
        bos_token_id=vocab - 1,
        eos_token_id=vocab - 1,
    )


def drawn_configs(dtype: str):
    """The configs the conformance suite draws in `dtype`. float32's have n_embd >= 8: LayerNorm over 2 channels
    whose values nearly agree amplifies float32's rounding by 1/sqrt(var + eps) (measured: ln_f 5.8e-5 apart,
    margin 1.21, between the C engine, which sums in double, and transformers at n_embd 2, epsilon 1e-6); over
    8 channels that needs 8 values within ~1e-3 of each other. float64 draws every width from 1."""
    return gpt2_configs(min_embd=8 if dtype == "float32" else 1)


@dataclass(frozen=True)
class Weights:
    """How a drawn model's weights are made, all by transformers' GPT2LMHeadModel from `seed`:
    init_std 0.02 is GPT-2's initialisation (zero biases, LayerNorm the identity); a larger std also
    randomises every bias and LayerNorm parameter; `sharp` adds the stress model's sharp attention and
    outlier channels (gpt2core.verification.stress.sharpen)."""

    seed: int
    init_std: float
    sharp: bool


def weights(dtype: str):
    """Weights for a drawn model in `dtype`. float64: GPT-2's initialisation, a std of 0.2 or 0.5 with random
    biases and LayerNorm, or the stress model's (GPT-2's initialisation sharpened, as
    gpt2core.verification.stress builds it; sharpened on top of a std of 0.5, scores reached 1e5 and float64's
    rounding alone moved attention by 1.4e-12). float32: GPT-2's initialisation or a std of 0.2. A std of 0.5
    makes attention as sharp as the stress model's (at n_embd 64, float32's rounding of the scores moved
    h1.attn_probs by 2.5e-5, margin 1.26), and the stress model is compared in float64 for that reason."""
    if dtype != "float64":
        return st.builds(Weights, SEEDS, st.sampled_from([0.02, 0.2]), st.just(False))
    plain = st.builds(Weights, SEEDS, INIT_STDS, st.just(False))
    return st.one_of(plain, st.builds(Weights, SEEDS, st.just(0.02), st.just(True)))


@dataclass(frozen=True)
class Inputs:
    """One drawn input: token ids [B, T] and a 0/1 left-padding mask [B, T] (None: no padding)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray | None

    def __repr__(self) -> str:  # what a failure prints: small enough to read, exact enough to rebuild
        mask = None if self.attention_mask is None else self.attention_mask.tolist()
        return f"Inputs(input_ids={self.input_ids.tolist()}, attention_mask={mask})"


@st.composite
def token_ids(draw, vocab_size, batch, seq):
    rng = np.random.default_rng(draw(SEEDS))
    return rng.integers(0, vocab_size, (batch, seq))


@st.composite
def left_padding_masks(draw, batch, seq):
    """[batch, seq] 0/1 masks, padding on the left, every row with at least one token."""
    lengths = draw(st.lists(st.integers(1, seq), min_size=batch, max_size=batch))
    return np.array([[0] * (seq - n) + [1] * n for n in lengths], dtype=np.int64)


@st.composite
def inputs(draw, vocab_size: int, n_positions: int, max_batch: int = 3, max_seq: int = 12, padding: bool = True):
    """A batch of 1..max_batch rows of 1..min(max_seq, n_positions) tokens, left-padded or not (never with
    padding=False: for an engine that runs no padded batch)."""
    B = draw(st.integers(1, max_batch))
    T = draw(st.integers(1, min(max_seq, n_positions)))
    ids = draw(token_ids(vocab_size, B, T))
    mask = draw(st.none() | left_padding_masks(B, T)) if padding else None
    return Inputs(ids, None if mask is None or mask.all() else mask)
