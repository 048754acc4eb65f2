"""Checkpoint-by-checkpoint verification of the engine against a reference set (see gpt2core.references).

Two modes per case:
  chained   the whole engine runs from the token ids; every checkpoint it records is compared. The first
            checkpoint (in the order the forward pass computes them) that exceeds its tolerance is where
            the engine diverged; everything after it inherits the error.
  isolated  each stage is fed the reference's own input for that stage (e.g. h3.attn_probs is the engine's
            softmax of the reference's h3.attn_scores), so a failure points at that one stage.
  cached    prefill, then decode one token at a time with the KV cache (after an unrelated request, so
            state leaking between requests shows); each step must equal the full pass at its position.
The stage functions are the engine's own (gpt2core.model, gpt2core.ops), looked up at call time, so a
fault injected into one of them (gpt2core.faults) shows in every mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import model as m
from . import ops
from .compare import Comparison, compare
from .model import GPT2, checkpoint_names
from .tolerances import CHECKPOINT_TOL

QKV = ("q", "k", "v")


def chained(model: GPT2, case) -> dict[str, np.ndarray]:
    """Every checkpoint of the engine's forward pass on the case's ids and mask (positions its own)."""
    rec: dict[str, np.ndarray] = {}
    model.forward(case.input_ids, case.attention_mask, checkpoints=rec)
    return rec


def isolated(model: GPT2, case, name: str, ref) -> np.ndarray:
    """Checkpoint `name` computed by the engine's stage from the reference's inputs; `ref(name)` gives those."""
    p, cfg = model.params, model.config
    eps = cfg.layer_norm_epsilon
    if name == "embeddings":
        return m.embed(case.input_ids, case.position_ids, p)
    if name == "ln_f":
        return m.final_layer_norm(ref(f"h{cfg.n_layer - 1}.out"), p, eps)
    if name == "logits":
        return m.lm_head(ref("ln_f"), p)
    head, kind = name.split(".")
    layer = int(head[1:])
    block = p.blocks[layer]

    def block_input():
        return ref("embeddings") if layer == 0 else ref(f"h{layer - 1}.out")

    if kind == "ln_1":
        return ops.layer_norm(block_input(), block.ln_1.g, block.ln_1.b, eps)
    if kind in QKV:
        return m.qkv_heads(ref(f"{head}.ln_1"), block, cfg.n_head)[QKV.index(kind)]
    if kind == "attn_scores":
        T = case.input_ids.shape[1]  # references are full forward passes: queries = keys = T
        allowed = m.attention_allowed(T, T, case.attention_mask)
        return ops.attention_scores(ref(f"{head}.q"), ref(f"{head}.k"), allowed)
    if kind == "attn_probs":
        return ops.softmax(ref(f"{head}.attn_scores"))
    if kind == "attn_out":
        return m.attention_output(ref(f"{head}.attn_probs") @ ref(f"{head}.v"), block)
    if kind == "ln_2":
        return ops.layer_norm(block_input() + ref(f"{head}.attn_out"), block.ln_2.g, block.ln_2.b, eps)
    if kind == "mlp_out":
        return m.ffn(ref(f"{head}.ln_2"), block)
    if kind == "out":
        return block_input() + ref(f"{head}.attn_out") + ref(f"{head}.mlp_out")
    raise KeyError(f"unknown checkpoint {name!r}")


def reference_slice(name: str, ref: np.ndarray, b: int, t: int, key_tokens: np.ndarray) -> np.ndarray:
    """The part of a full-pass reference that one decoding step at position t of row b must reproduce."""
    kind = name.rsplit(".", 1)[-1]
    if kind in ("k", "v"):
        return ref[b : b + 1, :, : t + 1][:, :, key_tokens]
    if kind == "q":
        return ref[b : b + 1, :, t : t + 1]
    if kind in ("attn_scores", "attn_probs"):
        return ref[b : b + 1, :, t : t + 1, : t + 1]
    return ref[b : b + 1, t : t + 1]


def compare_cached(model: GPT2, case, split: int | None = None, tol: dict = CHECKPOINT_TOL) -> list[Comparison]:
    """Prefill `split` positions, then decode the rest one at a time with the KV cache; compare every checkpoint
    of every step with the full pass at that position. Named `<checkpoint>@t=<step>,b=<row>`.

    An unrelated request runs first on a cache of its own, so state kept between requests shows. Keys and
    values are compared at token positions only: padding keys are masked, and a padding query attends
    uniformly to however many keys its call has, so they legitimately differ from the full pass.
    """
    ids, mask = case.input_ids, case.attention_mask
    B, T = ids.shape
    if split is None:  # every row needs a token in the prefill
        split = max(1, T // 2) if mask is None else int(np.argmax(mask.all(axis=0))) + 1
        split = min(split, T - 1) if T > 1 else T
    model((ids + 1) % model.config.vocab_size, mask, cache=model.new_cache(batch_size=B))  # an unrelated request
    cache = model.new_cache(batch_size=B)
    model(ids[:, :split], None if mask is None else mask[:, :split], cache=cache)
    names = checkpoint_names(model.config.n_layer)
    refs = {n: case.array(n) for n in names}
    out = []
    for t in range(split, T):
        rec: dict[str, np.ndarray] = {}
        model(ids[:, t : t + 1], None if mask is None else mask[:, : t + 1], cache=cache, checkpoints=rec)
        for b in range(B):
            key_tokens = np.ones(t + 1, bool) if mask is None else mask[b, : t + 1].astype(bool)
            for n in names:
                got = rec[n][b : b + 1]
                if n.endswith((".k", ".v")) and got.ndim == 4 and got.shape[2] == t + 1:
                    got = got[:, :, key_tokens]
                out.append(compare(f"{n}@t={t},b={b}", got, reference_slice(n, refs[n], b, t, key_tokens), tol))
    return out


def first_divergence(comparisons: list[Comparison]) -> Comparison | None:
    """The first failing comparison in forward-pass order (comparisons are given in that order)."""
    return next((c for c in comparisons if not c.ok), None)


def compare_case(model: GPT2, case, mode: str, tol: dict = CHECKPOINT_TOL) -> list[Comparison]:
    """Comparisons of every checkpoint of `case` (a references.ReferenceCase) in forward-pass order."""
    names = checkpoint_names(model.config.n_layer)
    if mode == "chained":
        got = chained(model, case)
        return [compare(n, got[n], case.array(n), tol) for n in names]
    if mode == "isolated":
        refs = {n: case.array(n) for n in names}  # each file read once: stages read their inputs from here
        return [compare(n, isolated(model, case, n, refs.__getitem__), refs[n], tol) for n in names]
    raise ValueError(f"mode must be 'chained' or 'isolated', got {mode!r}")


def worst(comparisons: list[Comparison]) -> Comparison:
    """The comparison with the largest margin (a problem counts as infinite)."""
    return max(comparisons, key=lambda c: c.margin)


def verify_references(model: GPT2, refs) -> dict:
    """Chained and isolated comparisons of every case of a loaded reference set, summarised per checkpoint."""
    names = checkpoint_names(model.config.n_layer)
    per_name = {n: {"chained": [], "isolated": []} for n in names}
    first = None
    for case in refs.cases:
        for mode in ("chained", "isolated"):
            comparisons = compare_case(model, case, mode)
            for c in comparisons:
                per_name[c.name][mode].append((case.name, c))
            bad = first_divergence(comparisons)
            if mode == "chained" and bad is not None and first is None:
                first = {"case": case.name, "name": bad.name, "message": bad.message()}
    rows = []
    for n in names:
        row = {"name": n}
        for mode, pairs in per_name[n].items():
            case_name, c = max(pairs, key=lambda pc: pc[1].margin)
            row[mode] = dict(c.as_dict(), case=case_name, message=c.message())
        row["ok"] = row["chained"]["ok"] and row["isolated"]["ok"]
        rows.append(row)
    chained_all = [c for n in names for _, c in per_name[n]["chained"]]
    return {
        "dtype": model.dtype.name,
        "cases": [c.name for c in refs.cases],
        "ok": all(r["ok"] for r in rows),
        "max_abs": max(c.max_abs for c in chained_all),
        "max_rel": max(c.max_rel for c in chained_all),
        "worst_margin": worst(chained_all).margin,
        "first_divergence": first,
        "checkpoints": rows,
    }


def verify_model(model_dir, dtypes=("float32", "float64"), reference_dirs=None, prompts=None,
                 full_length: bool = False, command: str | None = None) -> dict:  # fmt: skip
    """Verify the engine on model_dir against transformers, one run per dtype.

    The reference sets are read from `reference_dirs` (those of the given dtypes), or captured from
    transformers into a temporary directory (`prompts`, or the built-in cases). Returns
    {"ok", "model", "weights_sha256", "versions", "runs": [verify_references(...) + "references"]}.
    """
    import tempfile

    from .loading import load
    from .references import cases_for, load_references, versions, weights_sha256, write_references

    model_dir = Path(model_dir)
    runs = []
    with tempfile.TemporaryDirectory(prefix="gpt2core-references-") as tmp:
        if reference_dirs:
            ref_dirs = [Path(d) for d in reference_dirs]
        else:
            cases = cases_for(model_dir, prompts, full_length)
            ref_dirs = [write_references(model_dir, Path(tmp) / dt, cases, dt, command=command) for dt in dtypes]
        for ref_dir in ref_dirs:
            refs = load_references(ref_dir, model_dir)
            if refs.dtype.name not in dtypes:
                continue
            run = verify_references(load(model_dir, dtype=refs.dtype), refs)
            run["references"] = str(ref_dir) if reference_dirs else "(temporary, built by this run)"
            runs.append(run)
    if not runs:
        raise ValueError(f"no reference set in {[str(d) for d in reference_dirs]} has dtype {' or '.join(dtypes)}")
    return {"ok": all(r["ok"] for r in runs), "model": str(model_dir), "weights_sha256": weights_sha256(model_dir),
            "versions": versions(), "runs": runs}  # fmt: skip
