"""Sampling filters against transformers' logits processors: the same logits keep the same candidates."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from support.strategies import float_arrays
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from gpt2core.engine.generate import apply_temperature, top_k_filter, top_p_filter

logits_arrays = st.builds(lambda b, v: (b, v), st.integers(1, 4), st.integers(2, 200)).flatmap(
    lambda bv: float_arrays(bv, np.float64)
)


def hf(processor, logits):
    return processor(None, torch.from_numpy(logits.copy())).numpy()


@given(logits=logits_arrays, t=st.floats(0.05, 5.0))
def test_temperature_matches_transformers(logits, t):
    np.testing.assert_allclose(apply_temperature(logits, t), hf(TemperatureLogitsWarper(t), logits), rtol=1e-15)


@given(logits=logits_arrays, k=st.integers(1, 250))
def test_top_k_keeps_the_same_tokens_as_transformers(logits, k):
    got, ref = top_k_filter(logits, k), hf(TopKLogitsWarper(k), logits)
    assert (np.isfinite(got) == np.isfinite(ref)).all(), f"k={k} kept {np.isfinite(got).sum(-1)} vs {np.isfinite(ref).sum(-1)}"
    np.testing.assert_array_equal(got[np.isfinite(got)], logits[np.isfinite(got)])


@given(logits=logits_arrays, p=st.floats(0.01, 0.99))
def test_top_p_keeps_the_same_tokens_as_transformers(logits, p):
    got, ref = top_p_filter(logits, p), hf(TopPLogitsWarper(p), logits)
    assert (np.isfinite(got) == np.isfinite(ref)).all(), f"p={p} kept {np.isfinite(got).sum(-1)} vs {np.isfinite(ref).sum(-1)}"
