"""A catalogue of named, realistic bugs, injected into the engine without editing its source, and the
runner that proves the parity comparison catches each one at the checkpoint where it lives.

`inject(name)` swaps one function (or method) of gpt2core.engine's ops, model or cache for a broken copy and restores it on exit; GPT2CORE_FAULT=<name> does it for a whole pytest run
(tests/conftest.py). `run_catalogue` runs every fault against a reference set: float64
chained comparisons, the isolated comparison where the fault lives in one stage, and the cached-decoding
scenario for KV-cache faults. A fault counts as caught only if a comparison fails (a crash does not count)
and the first diverging checkpoint is the one the catalogue names.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..engine import cache as cache_module
from ..engine import generate as generate_module
from ..engine import model as model_module
from ..engine import ops
from . import fault_variants as V
from .numpy_subject import NumpySubject
from .sampling import SCORES, compare_sampled
from .verify import compare_cached, compare_case


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    target: tuple  # (module or class, attribute name)
    replacement: object
    checkpoint: str  # the first checkpoint that must diverge
    scenario: str = "forward"  # "forward": full passes over every case; "cache": incremental decoding;
    # "sampling": the processed scores along transformers' sampled path (checkpoint sample.scores@step=N)
    isolated: bool = True  # the isolated comparison must blame the same checkpoint
    property_modules: tuple[str, ...] = ()  # tests/property modules that must fail on their own
    notes: str = ""


O, M, G = ops, model_module, generate_module
FAULTS = {f.name: f for f in [
    Fault("no_scale", "attention scores not scaled by 1/sqrt(D)", (O, "attention_scores"), V.scores_variant(lambda d: 1.0), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("scale_1_over_d", "scores scaled by 1/D instead of 1/sqrt(D) (or the scale applied twice)", (O, "attention_scores"), V.scores_variant(lambda d: 1.0 / d), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("scale_1_over_sqrt_d_plus_1", "scores scaled by 1/sqrt(D+1)", (O, "attention_scores"), V.scores_variant(lambda d: (d + 1) ** -0.5), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("scale_times_sqrt_d", "scores multiplied by sqrt(D) instead of divided", (O, "attention_scores"), V.scores_variant(lambda d: d**0.5), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("no_causal_mask", "no causal mask: every query sees future keys", (O, "causal_mask"), lambda t, s: np.ones((t, s), dtype=bool), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("mask_diagonal_hidden", "causal mask off by one: a query cannot see its own key", (O, "causal_mask"), lambda t, s: np.tri(t, s, k=s - t - 1, dtype=bool), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("mask_future_visible", "causal mask off by one: one future key visible", (O, "causal_mask"), lambda t, s: np.tri(t, s, k=s - t + 1, dtype=bool), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("mask_fill_zero", "masked scores set to 0 instead of the dtype's minimum", (O, "attention_scores"), V.scores_variant(lambda d: d**-0.5, fill=0.0), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("mask_fill_minus_100", "masked scores set to -100 instead of the dtype's minimum", (O, "attention_scores"), V.scores_variant(lambda d: d**-0.5, fill=-100.0), "h0.attn_scores", property_modules=("test_ops.py",)),
    Fault("softmax_wrong_axis", "softmax over the query axis instead of the key axis", (O, "softmax"), lambda x, axis=-1: V.OPS["softmax"](x, axis=-2), "h0.attn_probs", property_modules=("test_ops.py",)),
    Fault("softmax_no_max_subtraction", "softmax without subtracting the row maximum (overflows on large scores)", (O, "softmax"), V.softmax_no_max, "h1.attn_heads", isolated=False, property_modules=("test_ops.py",),
          notes="the same in exact arithmetic: only overflow or 0/0 shows it. The stress model's scores reach 438, inside float64's exp "
                "range (709): at a token the float64 engine is right. A padding query, all of whose keys are masked, gets 0/0 = NaN, "
                "not model output and not compared; the next layer's attention multiplies it by the 0 a token gives a padding key, "
                "so every token of the row is NaN from h1.attn_heads on. The isolated mode feeds the reference's values: no NaN to spread"),
    Fault("ln_eps_1e-3", "LayerNorm epsilon 1e-3 instead of the config's 1e-5", (O, "layer_norm"), V.layer_norm_variant(eps=1e-3), "h0.ln_1", property_modules=("test_ops.py",)),
    Fault("ln_eps_1e-12", "LayerNorm epsilon 1e-12 instead of the config's 1e-5", (O, "layer_norm"), V.layer_norm_variant(eps=1e-12), "h0.ln_1", property_modules=("test_ops.py",)),
    Fault("ln_unbiased_variance", "LayerNorm with the unbiased (n-1) variance", (O, "layer_norm"), V.layer_norm_variant(ddof=1), "h0.ln_1", property_modules=("test_ops.py",)),
    Fault("ln_weight_bias_swapped", "LayerNorm gain and bias swapped", (O, "layer_norm"), V.layer_norm_variant(swap=True), "h0.ln_1", property_modules=("test_ops.py",)),
    Fault("exact_gelu", "exact erf GELU instead of GPT-2's tanh form", (O, "gelu"), V.exact_gelu, "h0.mlp_act", property_modules=("test_ops.py",),
          notes="the two GELUs differ by ~1e-5 relative: float32 comparisons see it only downstream"),
    Fault("gelu_wrong_constant", "tanh GELU with 0.04715 instead of 0.044715", (O, "gelu"), V.gelu_variant(0.04715), "h0.mlp_act", property_modules=("test_ops.py",)),
    Fault("linear_missing_bias", "Conv1D without its bias", (O, "linear"), lambda x, w, b: x @ w, "h0.q", property_modules=("test_ops.py",)),
    Fault("split_heads_wrong_reshape", "heads split with the wrong reshape order (strided columns)", (O, "split_heads"), V.split_heads_wrong, "h0.q", property_modules=("test_ops.py",)),
    Fault("merge_heads_wrong_order", "heads merged with the wrong transpose (columns ordered d-major)", (O, "merge_heads"), V.merge_heads_wrong, "h0.attn_heads", property_modules=("test_ops.py",)),
    Fault("attn_proj_transposed", "attention c_proj weight used transposed (square, so no shape error)", (M, "attention_projection"), V.attention_projection_transposed, "h0.attn_out", property_modules=("test_models.py",)),
    Fault("qkv_wrong_order", "c_attn output split as k, q, v instead of q, k, v", (M, "qkv_heads"), V.qkv_wrong_order, "h0.q", property_modules=("test_models.py",)),
    Fault("no_position_embeddings", "position embeddings left out", (M, "embed"), V.embed_no_positions, "embeddings", property_modules=("test_models.py",)),
    Fault("positions_off_by_one", "positions start at 1 instead of 0", (M, "positions_from_mask"), V.positions_off_by_one, "embeddings", isolated=False, property_modules=("test_models.py",)),
    Fault("positions_ignore_padding", "positions not shifted for left padding", (M, "positions_from_mask"), V.positions_ignore_padding, "embeddings", isolated=False, property_modules=("test_models.py",)),
    Fault("no_attn_residual", "attention residual dropped (x = attn(ln_1(x)))", (M, "transformer_block"), V.block_variant("no_attn_residual"), "h0.resid_mid", isolated=False, property_modules=("test_models.py",)),
    Fault("no_mlp_residual", "MLP residual dropped (x = mlp(ln_2(x)))", (M, "transformer_block"), V.block_variant("no_mlp_residual"), "h0.out", isolated=False, property_modules=("test_models.py",)),
    Fault("post_norm", "pre-norm block made post-norm", (M, "transformer_block"), V.block_variant("post_norm"), "h0.ln_1", isolated=False, property_modules=("test_models.py",)),
    Fault("final_ln_skipped", "final LayerNorm ln_f skipped", (M, "final_layer_norm"), lambda x, p, eps: x, "ln_f", property_modules=("test_models.py",)),
    Fault("untied_head", "output head untied: a fresh random matrix instead of wte", (M, "lm_head"), V.untied_head, "logits", property_modules=("test_models.py",)),
    Fault("cache_not_appended", "KV cache returns the new keys without the cached ones", (cache_module.KVCache, "append"), V.append_without_storing, "h0.k", scenario="cache", isolated=False, property_modules=("test_invariants.py",)),
    Fault("cache_advanced_twice", "KV cache length advanced twice per call (positions and keys shift)", (cache_module.KVCache, "advance"), V.advance_twice, "embeddings", scenario="cache", isolated=False, property_modules=("test_invariants.py",)),
    Fault("cache_reused_across_requests", "a new request gets the previous request's cache", (model_module.GPT2, "new_cache"), V.new_cache_reused, "embeddings", scenario="cache", isolated=False, property_modules=("test_invariants.py",),
          notes="the stale length shifts the new request's positions, so the embeddings diverge first"),
    Fault("sampling_top_p_before_temperature", "top-p applied before the temperature (to the untempered distribution)", (G, "sampling_scores"), V.scores_top_p_before_temperature, "sample.scores", scenario="sampling", isolated=False, property_modules=("test_sampling.py",)),
    Fault("sampling_in_float64", "sampling filters run in float64 for a float64 model (transformers casts the logits to float32)", (G, "sampling_scores"), V.scores_in_float64, "sample.scores", scenario="sampling", isolated=False, property_modules=("test_sampling.py",),
          notes="the values agree to float32 rounding: the dtype of the scores is what shows it"),
    Fault("sampling_temperature_multiplied", "logits multiplied by the temperature instead of divided", (G, "apply_temperature"), V.temperature_multiplied, "sample.scores", scenario="sampling", isolated=False, property_modules=("test_sampling.py",)),
    Fault("sampling_top_k_keeps_one_more", "top-k keeps k + 1 tokens", (G, "top_k_filter"), V.top_k_keeps_one_more, "sample.scores", scenario="sampling", isolated=False, property_modules=("test_sampling.py",)),
    Fault("sampling_top_p_drops_crossing_token", "top-p drops the token that carries the probability sum past p", (G, "top_p_filter"), V.top_p_drops_crossing_token, "sample.scores", scenario="sampling", isolated=False, property_modules=("test_sampling.py",)),
]}  # fmt: skip


def _apply(name: str, source: str = "fault "):
    """Put fault `name` in place; return (owner, attribute, original) to restore it."""
    if name not in FAULTS:
        raise KeyError(f"{source}{name!r} is not a known fault: {', '.join(FAULTS)}")
    owner, attr = FAULTS[name].target
    original = owner.__dict__[attr]
    setattr(owner, attr, FAULTS[name].replacement)
    return owner, attr, original


@contextlib.contextmanager
def inject(name: str):
    """Run the body with fault `name` in place of the engine's function; always restored."""
    owner, attr, original = _apply(name)
    V.shared_caches.clear()
    try:
        yield FAULTS[name]
    finally:
        setattr(owner, attr, original)


def inject_from_environment() -> str | None:
    """Inject the fault GPT2CORE_FAULT names for the rest of the process; return its name."""
    name = os.environ.get("GPT2CORE_FAULT")
    if name:
        _apply(name, source="GPT2CORE_FAULT=")
    return name


# --- running the catalogue -------------------------------------------------------------------------------


@dataclass
class Detection:
    """Where one comparison run (a dtype, a mode) first saw the fault."""

    checkpoint: str | None = None  # the earliest failing checkpoint in forward-pass order, over all cases
    case: str | None = None
    margin: float | None = None  # max abs diff / tolerance there (None: a shape/dtype/non-finite problem)
    problem: str | None = None
    message: str | None = None
    crashes: list[str] = field(default_factory=list)


def _detect(model, refs, mode: str) -> Detection:
    """Where `model` first fails on `refs` in `mode`, each checkpoint held to what `gpt2core verify` holds a subject
    of the set's dtype to (float32: the budgets measured on transformers, as the sensitivity scan; float64: the fixed
    tolerance). A fixed float32 tolerance failed the engine without a fault on the stress model's sharpest head
    when NumPy's BLAS ran on one thread (h1.attn_probs, margin 1.1): its probabilities carry float32's rounding
    of scores far from 1, which transformers' own float32 pass carries too."""
    from .verify import budgets_of

    subject, names = NumpySubject(model), refs.checkpoint_names
    budgets = budgets_of(subject, refs)
    order = {n: i for i, n in enumerate(names)} | {SCORES: len(names)}  # sampling after the forward pass
    found = Detection()
    best = None
    for case in refs.cases:
        try:
            if mode == "cached":
                comps = compare_cached(subject, case, names, model.config.vocab_size)
            elif mode == "sampled":
                comps = compare_sampled(subject, case, refs.dtype) if case.sampling is not None else []
            else:
                comps = compare_case(subject, case, mode, names, budgets.tol, lambda n, c=case.name: budgets.atol(c, n))
        except Exception as e:  # noqa: BLE001 - a crash is recorded, and never counts as caught
            found.crashes.append(f"{case.name}: {type(e).__name__}: {e}")
            continue
        for c in comps:
            if not c.ok:
                rank = order[c.name.split("@")[0]]
                if best is None or rank < best[0]:
                    best = (rank, case.name, c)
    if best is not None:
        _, found.case, c = best
        found.checkpoint = c.name.split("@")[0]
        found.margin = c.margin if c.problem is None else None
        found.problem, found.message = c.problem, c.message()
    return found


def run_fault(fault: Fault, models: dict, refs: dict) -> dict:
    """Run one fault against {dtype: model} and {dtype: References}; report where each run caught it."""
    runs = {}
    with inject(fault.name):
        for dtype, model in models.items():
            modes = {"cache": ["cached"], "sampling": ["sampled"]}.get(fault.scenario, ["chained"] + (["isolated"] if fault.isolated else []))
            runs[dtype] = {mode: _detect(model, refs[dtype], mode).__dict__ for mode in modes}
    main_mode = {"cache": "cached", "sampling": "sampled"}.get(fault.scenario, "chained")
    caught_by = [
        f"{dtype} {mode}" for dtype, by_mode in runs.items() for mode, d in by_mode.items() if d["checkpoint"] == fault.checkpoint
    ]
    expected = list(runs)
    caught = bool(expected) and all(
        all(runs[d][mode]["checkpoint"] == fault.checkpoint for mode in runs[d]) for d in expected
    )
    margins = [runs[d][main_mode]["margin"] for d in expected if runs[d][main_mode]["checkpoint"] == fault.checkpoint]
    problems = [runs[d][main_mode]["problem"] for d in expected if runs[d][main_mode]["problem"]]
    return {
        "name": fault.name,
        "description": fault.description,
        "caught": caught,
        "checkpoint": runs[expected[0]][main_mode]["checkpoint"] if expected else None,
        "expected_checkpoint": fault.checkpoint,
        "margin": min((m for m in margins if m is not None), default=None),
        "problem": problems[0] if problems else None,
        "caught_by": caught_by,
        "dtypes": expected,
        "scenario": fault.scenario,
        "property_modules": list(fault.property_modules),
        "notes": fault.notes,
        "runs": runs,
    }


def sensitivity(model, refs, tensors=("wte", "h0.c_attn.w", "h_last.mlp_proj.w", "ln_f.g"), seed: int = 0) -> dict:
    """The smallest relative perturbation w * (1 + delta * s), s = +-1 at random, of one weight tensor that
    the chained comparison detects, per tensor (delta from 1e-2 down to 1e-15), each checkpoint held to the
    budget the subject of refs' dtype is held to in verify (float32: measured, precision.budgets)."""
    from .verify import budgets_of

    subject, names = NumpySubject(model), refs.checkpoint_names
    budgets = budgets_of(subject, refs)  # float32: the measured budgets; float64: the fixed tolerance
    p = model.params
    arrays = {
        "wte": p.wte, "h0.c_attn.w": p.blocks[0].c_attn.w, "h_last.mlp_proj.w": p.blocks[-1].mlp_proj.w,
        "ln_f.g": p.ln_f.g,
    }  # fmt: skip
    rng = np.random.default_rng(seed)
    result = {}
    for name in tensors:
        w = arrays[name]
        original = w.copy()
        signs = rng.choice(np.array([-1.0, 1.0], dtype=w.dtype), size=w.shape)
        smallest = None
        for k in range(2, 16):
            delta = 10.0**-k
            w[...] = original * (1 + w.dtype.type(delta) * signs)
            try:
                detected = any(not c.ok for case in refs.cases
                               for c in compare_case(subject, case, "chained", names, budgets.tol, lambda n, c=case.name: budgets.atol(c, n)))  # fmt: skip
            finally:
                w[...] = original
            if not detected:
                break
            smallest = delta
        result[name] = smallest
    return result


def run_catalogue(model_dir, refs: dict, names=None, with_sensitivity: bool = True) -> dict:
    """Every fault (or those named) against refs["float64"] for model_dir (a ModelDir); the sensitivity
    scan uses every reference set given ({dtype name: References})."""
    from ..engine.loading import load

    models = {}
    for dtype, r in refs.items():
        models[dtype] = load(model_dir.path, dtype=np.dtype(dtype), config=model_dir.config)
        for mode in ("chained", "sampled"):
            baseline = _detect(models[dtype], r, mode)
            if baseline.checkpoint is not None or baseline.crashes:
                raise AssertionError(f"the engine without a fault already fails ({dtype}, {mode}): {baseline.message or baseline.crashes}")
    faults = [run_fault(FAULTS[n], {"float64": models["float64"]}, {"float64": refs["float64"]}) for n in (names or FAULTS)]
    report = {
        "model": str(model_dir),
        "dtypes": list(refs),
        "caught": sum(f["caught"] for f in faults),
        "total": len(faults),
        "faults": faults,
    }
    if with_sensitivity:
        report["sensitivity"] = {dtype: sensitivity(models[dtype], refs[dtype]) for dtype in refs}
    return report


def catalogue_on(model_dir, names=None, with_sensitivity: bool = True, command: str | None = None) -> dict:
    """`run_catalogue` on model_dir (a ModelDir or a path) with float64 references captured from transformers
    into a temporary directory (the built-in cases), and float32 ones for the sensitivity scan; the report also
    names the weights and versions.

    Faults are injected in float64 only, so without the scan float32 is not run: on the 355M stress model its
    sharp head's probabilities carry float32's rounding of scores in the hundreds (margin 2.5 of the fixed float32
    tolerance at h0.attn_probs between the clean engine and transformers), which says nothing about the faults."""
    import tempfile
    from pathlib import Path

    from .cases import cases_for
    from .hf import release_hf_models
    from .memory import check_fits, run_memory, weights_bytes
    from .model_dir import read_model_dir
    from .reference_set import load_references, versions, write_references

    unknown = [n for n in names or [] if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
    model_dir = read_model_dir(model_dir)
    cases = cases_for(model_dir)
    float32_engine = weights_bytes(model_dir.config, np.float32) if with_sensitivity else 0  # beside the float64 one
    plan = run_memory(model_dir.config, [c.input_ids.shape for c in cases], ["float64"], also_held_bytes=float32_engine)
    check_fits(plan, "the fault catalogue")
    with tempfile.TemporaryDirectory(prefix="gpt2core-faults-") as tmp:
        refs = {}
        for dtype in ("float64", "float32") if with_sensitivity else ("float64",):
            write_references(model_dir, Path(tmp) / dtype, cases, dtype, command=command)
            release_hf_models()  # transformers' model is gone before the engines are loaded
            refs[dtype] = load_references(Path(tmp) / dtype, model_dir)
        report = run_catalogue(model_dir, refs, names=names, with_sensitivity=with_sensitivity)
    report.update(weights_sha256=model_dir.weights_sha256, versions=versions())
    return report
