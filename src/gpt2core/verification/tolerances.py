"""Every tolerance gpt2core is verified with, set once here, each with the measurement that justifies it.

A tolerance is relative to the reference's scale: |got - ref| <= TOL[dtype] * max(1, max|ref|), so the
same numbers hold for trained GPT-2, whose activations reach the thousands where random weights stay near 1.
Measured with transformers 5.24 / torch 2.13 CPU / numpy 2.4 (`gpt2core verify --json` and tests/parity):
  logits, 124M shape, 1-128 tokens: float32 max abs diff 3.8e-6 (max|ref| 3.2), float64 8.0e-15
  logits, tiny shape:               float32 3.0e-7,                      float64 5.0e-16
  every checkpoint of every layer, 124M shape, 1-1024 positions, worst |diff| / max|ref| (gpt2core.compare):
  float32 2.6e-6 (h11.attn_scores), float64 6.3e-15 (h1.attn_scores); built-in model 3.3e-6 / 1.0e-14
  the GPT-2 family (`gpt2core init-model --shape S`, `gpt2core verify --json`, the built-in cases, 1-128 tokens),
  worst |diff| / max|ref| over every checkpoint, float32 / float64:
    355M  (24 layers, 16 heads)  6.4e-6 (h7.attn_scores)  / 1.3e-14 (h22.attn_scores)
    774M  (36 layers, 20 heads)  6.4e-6 (h11.attn_scores) / 1.6e-14 (h23.attn_scores)
    1558M (48 layers, 25 heads)  9.3e-6 (h26.attn_scores) / 1.6e-14 (h20.attn_scores); logits 1.4e-5 / 2.6e-14 abs
"""

from __future__ import annotations

import numpy as np

# float32: 5x the largest difference measured on the 124M shape (3.8e-6 at logits scale ~3); at 48 layers
# (1558M) the worst checkpoint reaches 9.3e-6 of its scale, so it still holds with 2.1x to spare.
# float64: ~125x the measured 8.0e-15 (64x the 1558M shape's worst, 1.6e-14); 1e7 times tighter than float32's.
LOGITS_TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}

# Every checkpoint (gpt2core.compare scales by max|ref|, no floor of 1): worst measured float32 3.3e-6
# (6x below 2e-5), float64 1.0e-14 (100x below 1e-12).
CHECKPOINT_TOL = LOGITS_TOL

# Op- and block-level comparisons with torch on random inputs (tests/property), same scaling rule.
# Measured over one ci-profile run (100 examples per test, widths <= 96, values up to 1e2), as the
# worst |got - ref| / max(1, max|ref|): float32 1.5e-6 (padding invariance), so 1e-5 leaves ~7x;
# float64 2.4e-15 (a whole GPT2Block), so 1e-12 leaves ~400x.
# LayerNorm's tolerance is further multiplied by its condition number max|x| / sqrt(var + eps).
OP_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


class FlooredTolerance(dict):
    """dtype -> tolerance, applied relative to max(floor, max|ref|) (see gpt2core.verification.compare)."""

    floor = 1.0


# The conformance suite's drawn models (gpt2core.conformance): CHECKPOINT_TOL relative to max(1, max|ref|), as
# OP_TOL. On a drawn model a checkpoint can be small by cancellation while its inputs are not: at n_embd 2 with
# GPT-2's initialisation, attn_heads held 2.6e-5 computed from values near 0.02, and float32 rounding of the
# cached pass against the full one left 2.8e-9 (3x CHECKPOINT_TOL relative to 2.6e-5; 7000x below this one).
# A fault moves a checkpoint by a fraction of its inputs' scale (O(1) after LayerNorm), so it still shows.
DRAWN_TOL = FlooredTolerance(CHECKPOINT_TOL)


def scaled_atol(base: dict, ref: np.ndarray) -> float:
    """The absolute tolerance for `ref`: the dtype's base tolerance times max(1, max|ref|)."""
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    return base[np.dtype(ref.dtype)] * scale

# Precision classes (gpt2core.verification.precision): an engine's budget per checkpoint and case is
# max(PRECISION_FLOOR[class] * max|ref|, BUDGET_FACTOR * the honest implementation's error on that input).
BUDGET_FACTOR = 4.0  # PROVISIONAL
KL_FACTOR = BUDGET_FACTOR**2  # KL grows as the square of a small logits error
KL_FLOOR = 1e-12
PRECISION_FLOOR = {
    "float64": CHECKPOINT_TOL[np.dtype(np.float64)],
    "float32": CHECKPOINT_TOL[np.dtype(np.float32)],
    "float16": 4.9e-4, "bfloat16": 3.9e-3, "int8": 3.9e-3, "float32-f16kv": 4.9e-4,
    "gguf-f16": 4.9e-4, "gguf-q8_0": 3.9e-3, "gguf-q4_0": 3.1e-2,
}  # fmt: skip

# Sampled generation (gpt2core.verification.sampling): transformers processes the scores in float32 whatever
# the model's dtype. A float32 engine's scores carry its logits' difference: the logits tolerance. A float64
# engine's logits agree to ~1e-14, so rounded to float32 they are equal or one float32 ulp apart (2^-23 ~
# 1.2e-7 of max|scores|), and the temperature division rounds the same way on both sides: 2.4e-7 is 2 ulps.
SAMPLE_SCORES_TOL = {np.dtype(np.float32): LOGITS_TOL[np.dtype(np.float32)], np.dtype(np.float64): 2.4e-7}
# top-p's cumulative probabilities in float32, torch (transformers) against NumPy (gpt2core), on 80 rows of
# 50,257 logits of scale 0.1 to 10: at most 4.8e-7 apart; 2e-6 leaves 4x. A token that close to 1 - top_p is
# one whose filtering is decided by rounding (see sampling.undecided_tokens).
SAMPLE_CUMULATIVE_TOL = 2e-6
