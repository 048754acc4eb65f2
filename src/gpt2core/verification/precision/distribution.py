"""The next-token distribution at the logits, as llama.cpp's `llama-perplexity --kl-divergence` judges a
quantized model, but per case and position of a reference set:

  kl         KL(reference || engine) of the next-token distributions, in nats
  top1       whether the engine's most probable token is the reference's
  p_top      the engine's probability of the reference's most probable token (and the reference's own)
  nll        the negative log-likelihood of each case's next token (positions whose next position holds a
             token), engine and reference; their mean's difference gives the perplexity ratio
Only positions holding a token are measured (padding is not model output).
"""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """[..., V] -> log-probabilities in float64."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


CHUNK = 16  # positions per step: float64 temporaries of CHUNK x V (6 MB at GPT-2's vocabulary), not of T x V


def per_position(got: np.ndarray, ref: np.ndarray, tokens: np.ndarray, input_ids: np.ndarray) -> dict:
    """got, ref: logits [B, T, V]; tokens: bool [B, T] (a token, not padding); input_ids [B, T].
    {"kl", "top1", "p_top", "p_top_ref"}: [N] over the N token positions (row-major);
    {"nll", "nll_ref"}: [M] over the token positions whose next position holds a token."""
    if got.shape != ref.shape or got.ndim != 3 or tokens.shape != got.shape[:2]:
        raise ValueError(f"logits {list(got.shape)} and {list(ref.shape)} with tokens {list(tokens.shape)}: expected [B, T, V] twice and [B, T]")
    b, t = np.nonzero(tokens)
    follows = np.zeros(tokens.shape, bool)
    follows[:, :-1] = tokens[:, :-1] & tokens[:, 1:]  # position t whose next position t+1 holds a token
    parts: dict[str, list] = {k: [] for k in ("kl", "top1", "p_top", "p_top_ref", "nll", "nll_ref")}
    for start in range(0, len(b), CHUNK):
        bb, tt = b[start : start + CHUNK], t[start : start + CHUNK]
        lg, lr = log_softmax(got[bb, tt]), log_softmax(ref[bb, tt])
        top = lr.argmax(axis=-1)
        rows = np.arange(len(top))
        parts["kl"].append(np.maximum((np.exp(lr) * (lr - lg)).sum(axis=-1), 0.0))  # >= 0 up to rounding
        parts["top1"].append(lg.argmax(axis=-1) == top)
        parts["p_top"].append(np.exp(lg[rows, top]))
        parts["p_top_ref"].append(np.exp(lr[rows, top]))
        scored = follows[bb, tt]
        nxt = input_ids[bb[scored], tt[scored] + 1]
        parts["nll"].append(-lg[rows[scored], nxt])
        parts["nll_ref"].append(-lr[rows[scored], nxt])
    empty = {"top1": np.zeros(0, bool)}
    return {k: np.concatenate(v) if v else empty.get(k, np.zeros(0)) for k, v in parts.items()}


def summary(metrics: list[dict]) -> dict:
    """Over every case's per_position: KL mean and max, top-1 agreement, mean p_top (engine, reference), the
    perplexity ratio exp(mean nll - mean nll_ref) (1.0 with no next token to score), the positions counted."""
    cat = {k: np.concatenate([m[k] for m in metrics]) if metrics else np.zeros(0) for k in ("kl", "top1", "p_top", "p_top_ref", "nll", "nll_ref")}
    n = len(cat["kl"])
    return {
        "positions": int(n),
        "kl_mean": float(cat["kl"].mean()) if n else float("nan"),
        "kl_max": float(cat["kl"].max()) if n else float("nan"),
        "top1_agreement": float(cat["top1"].mean()) if n else float("nan"),
        "p_top_mean": float(cat["p_top"].mean()) if n else float("nan"),
        "p_top_ref_mean": float(cat["p_top_ref"].mean()) if n else float("nan"),
        "perplexity_ratio": float(np.exp(cat["nll"].mean() - cat["nll_ref"].mean())) if len(cat["nll"]) else 1.0,
    }  # fmt: skip


def summary_of_summaries(summaries: list[dict]) -> dict:
    """Per-case summaries combined: positions summed, KL mean and top-1 agreement weighted by positions, KL max
    the largest; a case of no positions counts for nothing, and no positions at all gives NaN figures."""
    n = sum(s["positions"] for s in summaries)
    if not n:
        return {"positions": 0, "kl_mean": float("nan"), "kl_max": float("nan"), "top1_agreement": float("nan")}
    return {
        "positions": n,
        "kl_mean": sum(s["kl_mean"] * s["positions"] for s in summaries if s["positions"]) / n,
        "kl_max": max(s["kl_max"] for s in summaries if s["positions"]),
        "top1_agreement": sum(s["top1_agreement"] * s["positions"] for s in summaries if s["positions"]) / n,
    }
