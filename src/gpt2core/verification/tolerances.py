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
# max(PRECISION_FLOOR[class] * max|ref|, BUDGET_FACTOR * the honest implementation's error on that input), the
# honest error being |honest - transformers float64| (precision.budgets).
# BUDGET_FACTOR: correct engines measured against the honest error of their class, worst ratio over every
# checkpoint and case of the built-in 124M model (`python benchmarks/budget_ratios.py`): gpt2core's NumPy engine in
# float32 2.5 (h4.attn_probs), on the stress model 2.2; CTranslate2 4.8.5 float32 2.1 and int8_float32 1.1 (logits);
# the C engine's float16-storage build 1.7 against float16 transformers (examples/c-engine, worst margin 0.43).
# Two independent roundings of one computation differ by up to about twice either's error, so 4 leaves 1.6x to
# spare over the worst measured, and an engine 10x worse than its class's arithmetic still fails.
BUDGET_FACTOR = 4.0
# KL divergence grows as the square of a small logits error: an engine held to BUDGET_FACTOR times the honest
# logits error is held to BUDGET_FACTOR**2 times the honest KL (mean and max over positions).
KL_FACTOR = BUDGET_FACTOR**2
KL_FLOOR = 1e-12  # nats: below float64 rounding of log-probabilities of scale 10 (~1e-15 each, summed over V)
# The floor of each class, relative to max|ref|: float64 and float32 keep the fixed tolerances measured above;
# the others one unit roundoff of the format their values pass through (float16 2^-11 = 4.9e-4, bfloat16 2^-8 =
# 3.9e-3; int8 and q8_0 1/254 ~ 3.9e-3 of a row's or block's scale; q4_0 1/16 ~ 6.3e-2 of a block's): no honest
# engine of the class does better at every entry, so a budget measured as 0 (a checkpoint exact on one case)
# never fails one.
PRECISION_FLOOR = {
    "float64": CHECKPOINT_TOL[np.dtype(np.float64)],
    "float32": CHECKPOINT_TOL[np.dtype(np.float32)],
    "float16": 4.9e-4, "bfloat16": 3.9e-3, "int8": 3.9e-3, "float32-f16kv": 4.9e-4,
    "gguf-f16": 4.9e-4, "gguf-q8_0": 3.9e-3, "gguf-q4_0": 6.3e-2,
}  # fmt: skip
# The honest implementation's worst |honest - float64| / max|ref| over every checkpoint and case of the built-in
# 124M model (`gpt2core budgets`, transformers 5.24 / torch 2.13 CPU); the README's table has it per checkpoint kind.
WORST_HONEST_REL = {
    "float16": 3.1e-3, "bfloat16": 2.4e-2, "int8": 8.0e-2, "float32-f16kv": 8.6e-4,
    "gguf-f16": 1.8e-3, "gguf-q8_0": 5.2e-2, "gguf-q4_0": 5.0e-1,
}  # fmt: skip
# `gpt2core budgets --check`: recomputed honest errors must equal the stored ones to this relative difference. On
# one machine they are identical (torch's CPU kernels are deterministic at a fixed thread count); another CPU's
# kernels may block a product differently and round another way, which moves an error magnitude by a few percent
# at most; a budget that moved more than 10% is not the one stored.
BUDGET_REPRODUCE_RTOL = 0.1
# The conformance suite's drawn models carry no measured budgets: an engine of a lower class is held there to
# BUDGET_FACTOR times its class's worst honest error above (relative to max(1, max|ref|), as DRAWN_TOL).
DRAWN_CLASS_TOL = {name: BUDGET_FACTOR * rel for name, rel in WORST_HONEST_REL.items()}

# Sampled generation (gpt2core.verification.sampling): transformers processes the scores in float32 whatever
# the model's dtype. A float32 engine's scores carry its logits' difference: the logits tolerance. A float64
# engine's logits agree to ~1e-14, so rounded to float32 they are equal or one float32 ulp apart (2^-23 ~
# 1.2e-7 of max|scores|), and the temperature division rounds the same way on both sides: 2.4e-7 is 2 ulps.
SAMPLE_SCORES_TOL = {np.dtype(np.float32): LOGITS_TOL[np.dtype(np.float32)], np.dtype(np.float64): 2.4e-7}
# top-p's cumulative probabilities in float32, torch (transformers) against NumPy (gpt2core), on 80 rows of
# 50,257 logits of scale 0.1 to 10: at most 4.8e-7 apart; 2e-6 leaves 4x. A token that close to 1 - top_p is
# one whose filtering is decided by rounding (see sampling.undecided_tokens).
SAMPLE_CUMULATIVE_TOL = 2e-6
