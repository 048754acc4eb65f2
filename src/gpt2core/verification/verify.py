"""Checkpoint-by-checkpoint verification of a subject against a reference set, in every mode it offers.

  chained   the subject runs from the token ids; every checkpoint is compared. The first checkpoint (in
            the order the forward pass computes them) that exceeds its tolerance is where the engine
            diverged; everything after it inherits the error.
  isolated  (capability "stages") each stage is fed the reference's own input for that stage (e.g.
            h3.attn_probs is the subject's softmax of the reference's h3.attn_scores): a failure points
            at that one stage.
  cached    (capability "decode") prefill, then decode one position at a time with the subject's cache,
            after an unrelated request, so state leaking between requests shows; each step must equal
            the full pass at its position.
  generate  (capability "generate") the greedy continuation equals transformers' generate token for token.
  sampled   (capability "sample") along transformers' sampled path (generate(do_sample=True), recorded on
            one case), the processed scores of every step equal transformers' (gpt2core.verification.sampling).
A mode the subject does not offer is reported as not run, never as passed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .batch_layout import defined_entries, ids_to_left_padded, to_left_padded, token_mask
from .compare import Comparison, compare, named_position
from .compare import _problem as problem_of
from .errors import DumpError
from .memory import (check_fits, children_peak_rss_bytes, current_rss_bytes, give_back_freed_memory, peak_rss_bytes,
                     reset_peak_rss, run_memory)
from .mode_inputs import Unrelated, default_split
from .reference_cache import cache_root, cached_references, is_cached
from .reference_set import load_references, versions, write_references
from .sampling import compare_sampled
from .subject import CAPABILITIES, MODES, axes_of, check_subject, kind_of, modes_of
from .precision import distribution
from .precision.budgets import budgets_for, ensure_budgets
from .precision.deviations import parse_deviations, waiver_for
from .tolerances import BUDGET_FACTOR, CHECKPOINT_TOL
from .verdict import combine, judge

# The memory bound (gpt2core.verification.memory) is a verdict on gpt2core's own engine, on weights of 1 GiB or more:
# on the tiny model the run's fixed costs (0.25 GB above the baseline) are 20 times its 13 MB of weights
BOUND_FROM_BYTES = 2**30
MODE_NEEDS = {mode: capability for capability, (mode, _) in CAPABILITIES.items()}  # mode -> the capability it needs


def compare_chained(subject, case, names, tol: dict = CHECKPOINT_TOL, budget=None, keep: dict | None = None) -> list[Comparison]:
    """Every checkpoint of the subject's forward pass on the case, in forward-pass order; `budget` (name ->
    an absolute tolerance measured for it on this case, see precision.budgets) raises a checkpoint's
    tolerance above tol's; `keep` ({name: None}) receives (the subject's array, the reference) of those names.

    A checkpoint the subject cannot produce (a DumpError: a missing, unreadable or misshapen dump file)
    is a failure naming the file, never a skip; masked attention scores are read in the subject's
    declared convention (`masked_scores`); entries at padding positions are not compared."""
    got = subject.checkpoints(case)
    tokens = token_mask(case)
    out = []
    for n in names:
        if n not in got:
            out.append(failed(n, "not returned by the subject"))
            continue
        try:
            array = got[n]
        except DumpError as e:
            out.append(failed(n, str(e)))
            continue
        ref = case.array(n)
        if keep is not None and n in keep:
            keep[n] = (array, ref)
        out.append(compare_defined(subject, n, array, ref, tokens, tol, at_least(budget, n)))
    return out


def at_least(budget, name: str) -> float:
    """The measured absolute budget of `name` (0.0 without budgets)."""
    return 0.0 if budget is None else budget(name)


def compare_defined(subject, name: str, got, ref: np.ndarray, tokens: np.ndarray, tol: dict, budget: float = 0.0) -> Comparison:
    """One full-pass checkpoint of the subject against its reference over the entries the model defines
    (`tokens` [B, T]: where the case holds a token), in the subject's batch layout and masked-score
    convention."""
    layout = getattr(subject, "batch_layout", "left-padded")
    try:
        defined = defined_entries(name, tokens, ref.shape)
    except ValueError:  # a reference whose shape does not fit the case: the shapes are compared first
        shape_differs = not isinstance(got, np.ndarray) or got.shape != ref.shape
        if shape_differs and layout == "left-padded":
            return compare(name, got, ref, tol, at_least=budget)
        return failed(name, f"the reference's shape {list(ref.shape)} does not fit the case's {list(tokens.shape)} tokens")
    try:
        got = in_case_layout(subject, name, got, tokens)
    except DumpError as e:
        return failed(name, str(e))
    got, problem = masked_convention(name, got, ref, getattr(subject, "masked_scores", "min"), defined)
    return compare(name, got, ref, tol, defined, budget) if problem is None else failed(name, problem)


def in_case_layout(subject, name: str, got, tokens: np.ndarray):
    """A full-pass checkpoint of the subject in the case's left-padded layout (as it is when the subject lays
    its batch out so, or is not an array); a DumpError when it does not fit its declared layout."""
    layout = getattr(subject, "batch_layout", "left-padded")
    if layout == "left-padded" or not isinstance(got, np.ndarray):
        return got
    return to_left_padded(got, name, tokens, layout, f"{name} ({layout})")


def masked_convention(name: str, got, ref: np.ndarray, convention, defined: np.ndarray | None = None):
    """Masked attention scores in the subject's convention -> transformers' (the dtype's minimum).

    "min": as they are; "-inf": each must be -inf; "not computed": whatever they hold is ignored;
    {"at_or_below": x}: each must be at or below x (an engine masking with -1e10 or -65504). Only entries
    the reference masks (among the defined ones) are touched, so an -inf anywhere else is still a failure.
    Returns (array, problem or None)."""
    if convention == "min" or kind_of(name) != "attn_scores" or not isinstance(got, np.ndarray) or got.shape != ref.shape:
        return got, None
    masked = ref == np.finfo(ref.dtype).min
    if defined is not None:
        masked &= defined
    if convention == "-inf":
        bad = masked & ~np.isneginf(got)
    elif isinstance(convention, dict):
        with np.errstate(invalid="ignore"):
            bad = masked & ~(got <= convention["at_or_below"])
    else:
        bad = np.zeros_like(masked)
    if bad.any():
        at = named_position(axes_of(name), np.argwhere(bad)[0])
        rule = "-inf" if convention == "-inf" else f"at or below {convention['at_or_below']!r}"
        return got, f"a masked score is not {rule} (the declared convention) at {at}: {float(got[bad].flat[0])!r}"
    return np.where(masked, np.finfo(ref.dtype).min, got).astype(got.dtype), None


def compare_isolated(subject, case, names, tol: dict = CHECKPOINT_TOL, budget=None) -> list[Comparison]:
    """Every checkpoint computed by the subject's own stage from the reference's inputs, in the subject's
    masked-score convention, over the entries the model defines."""
    refs = {}  # each file read once: stages read their inputs from here, provided or not

    def ref(name: str) -> np.ndarray:
        if name not in refs:
            refs[name] = case.array(name)
        return refs[name]

    tokens = token_mask(case)
    out = []
    for n in names:
        try:
            got = subject.stage(n, case, ref)
        except DumpError as e:  # an engine verified through files: its stage's file is missing or broken
            out.append(failed(n, str(e)))
            continue
        out.append(compare_defined(subject, n, got, ref(n), tokens, tol, at_least(budget, n)))
    return out


def failed(name: str, problem: str) -> Comparison:
    """A comparison that could not be made: the subject returned nothing usable for `name` (the comparison's own
    problem record, of nothing)."""
    return problem_of(name, None, problem)


def compare_case(subject, case, mode: str, names, tol: dict = CHECKPOINT_TOL, budget=None) -> list[Comparison]:
    """Comparisons of every checkpoint of `case` in forward-pass order, for mode chained or isolated."""
    if mode == "chained":
        return compare_chained(subject, case, names, tol, budget)
    if mode == "isolated":
        return compare_isolated(subject, case, names, tol, budget)
    raise ValueError(f"mode must be 'chained' or 'isolated', got {mode!r}")


def positions(name: str, array: np.ndarray, queries: slice, keys: slice) -> np.ndarray:
    """The part of checkpoint `name` at query positions `queries` and key positions `keys`."""
    kind = kind_of(name)
    if kind == "q":
        return array[:, :, queries]
    if kind in ("k", "v"):
        return array[:, :, keys]
    if kind in ("attn_scores", "attn_probs"):
        return array[:, :, queries][:, :, :, keys]
    return array[:, queries]


def reference_slice(name: str, ref: np.ndarray, b: int, t: int, key_tokens: np.ndarray) -> np.ndarray:
    """The part of a full-pass reference that one decoding step at position t of row b must reproduce."""
    part = positions(name, ref[b : b + 1], slice(t, t + 1), slice(0, t + 1))
    return part[:, :, key_tokens] if kind_of(name) in ("k", "v") else part


def compare_cached(subject, case, names, vocab_size: int, split: int | None = None,
                   tol: dict = CHECKPOINT_TOL, budget=None) -> list[Comparison]:  # fmt: skip
    """Prefill `split` positions, then decode the rest one at a time with the subject's cache; compare every
    checkpoint of every step with the full pass at that position. Named `<checkpoint>@t=<step>,b=<row>`.

    An unrelated request runs first (prefill only), so state kept between requests shows. Keys, values,
    scores and probabilities are compared at token keys only: padding is not model output (the queries
    decoded are tokens: decoding starts after the first column where every row has one).
    """
    ids, mask = case.input_ids, case.attention_mask
    B, T = ids.shape
    split = default_split(case) if split is None else split
    unrelated = Unrelated(case, vocab_size)
    for _ in subject.decode(unrelated, T):
        pass
    refs = {n: case.array(n) for n in names}
    out = []
    steps = 0
    for t, rec in enumerate(subject.decode(case, split), start=split):
        steps += 1
        if t >= T:
            out.append(failed(f"logits@t={t}", f"a decoding step past the case's {T} positions (decode yielded more than "
                                                f"the {T - split} steps of positions {split} .. {T - 1})"))  # fmt: skip
            break
        for b in range(B):
            key_tokens = np.ones(t + 1, bool) if mask is None else mask[b, : t + 1].astype(bool)
            for n in names:
                step = f"{n}@t={t},b={b}"
                if n not in rec:
                    out.append(failed(step, "not returned by the subject"))
                    continue
                try:
                    got = rec[n][b : b + 1]
                except DumpError as e:  # a step file of an engine verified through files
                    out.append(failed(step, str(e)))
                    continue
                if kind_of(n) in ("k", "v") and getattr(got, "ndim", 0) == 4:
                    if got.shape[2] != t + 1:
                        out.append(failed(step, f"{got.shape[2]} key position(s): a decoding step's {kind_of(n)} is its "
                                                f"cache's, positions 0 .. {t} ({t + 1})"))  # fmt: skip
                        continue
                    got = got[:, :, key_tokens]
                ref = reference_slice(n, refs[n], b, t, key_tokens)
                defined = None  # padding keys of a step's scores and probabilities are not compared
                if kind_of(n) in ("attn_scores", "attn_probs"):
                    defined = np.broadcast_to(key_tokens, ref.shape).copy()
                got, problem = masked_convention(n, got, ref, getattr(subject, "masked_scores", "min"), defined)
                out.append(compare(step, got, ref, tol, defined, at_least(budget, n)) if problem is None else failed(step, problem))
    if steps < T - split:  # every position after the prefill is decoded: a step left out is a failure, not fewer checks
        out.append(failed(f"logits@t={split + steps}", f"decode yielded {steps} step(s); positions {split} .. {T - 1} need "
                                                       f"{T - split}"))  # fmt: skip
    return out


def compare_greedy(subject, case) -> dict:
    """The subject's greedy continuation against transformers' (the reference set's), token for token over
    each row's prompt tokens and every new token (padding is not compared; a subject laid out right-padded
    returns its rows so, see batch_layout.ids_to_left_padded)."""
    n, expected = case.greedy
    tokens = token_mask(case)
    try:
        got = ids_to_left_padded(np.asarray(subject.generate(case, n)), tokens, getattr(subject, "batch_layout", "left-padded"))
    except DumpError as e:
        return {"case": case.name, "ok": False, "message": str(e)}
    if got.shape != expected.shape:
        return {"case": case.name, "ok": False, "message": f"ids of shape {list(got.shape)}, transformers' {list(expected.shape)}"}
    defined = np.concatenate([tokens, np.ones((tokens.shape[0], expected.shape[1] - tokens.shape[1]), bool)], axis=1)
    differ = np.argwhere((got != expected) & defined)
    if differ.size:
        b, t = (int(i) for i in differ[0])
        return {"case": case.name, "ok": False,
                "message": f"row {b} position {t}: token {int(got[b, t])}, transformers' {int(expected[b, t])}"}  # fmt: skip
    return {"case": case.name, "ok": True, "message": f"{got.shape[1] - case.input_ids.shape[1]} tokens equal"}


def sampled_result(subject, case, engine_dtype, logits_budget: float = 0.0) -> dict:
    """The subject's processed scores along transformers' sampled path: ok, settings, one row per step
    (`logits_budget`: the case's logits budget in the subject's precision class)."""
    comparisons = compare_sampled(subject, case, engine_dtype, logits_budget)
    bad = first_divergence(comparisons)
    steps = [dict(c.as_dict(), message=c.message()) for c in comparisons]
    summary = (bad.message() if bad is not None else
               f"{len(steps)} steps equal within tolerance (worst margin {worst(comparisons).margin:.3g})")  # fmt: skip
    return {"case": case.name, "ok": bad is None, "settings": case.sampling[0].as_dict(), "steps": steps, "message": summary}


def first_divergence(comparisons: list[Comparison]) -> Comparison | None:
    """The first failing comparison in forward-pass order (comparisons are given in that order)."""
    return next((c for c in comparisons if not c.ok), None)


def worst(comparisons: list[Comparison]) -> Comparison:
    """The comparison with the largest margin (a problem counts as infinite)."""
    return max(comparisons, key=lambda c: c.margin)


def verify_references(subject, refs, require: str = "offered") -> dict:
    """Every mode the subject offers, on every case it can run of a loaded reference set, summarised per
    checkpoint.

    What the subject leaves out is listed and counted: checkpoints it does not provide (`provides`),
    cases it cannot run (`can_run(case)` gives the reason), modes it does not offer. The verdict is FAIL
    when a comparison fails or logits were verified on no case; with require="offered" (the default) PASS
    when everything the subject offers passed; with require="all" INCOMPLETE unless every checkpoint, case
    and mode ran. The first divergence is the earliest failing checkpoint in forward-pass order over every
    case and mode (greedy and sampled generation after the logits); `first_per_case` has each case's."""
    check_subject(subject)
    names, offered = refs.checkpoint_names, modes_of(subject)
    provided = [n for n in names if n in getattr(subject, "provides", names)]
    budgets = budgets_of(subject, refs)
    tol = budgets.tol
    deviations = parse_deviations(getattr(subject, "deviations", ()), f"subject {subject.name}")  # checked by check_subject
    metrics = []  # the next-token distribution of every case whose logits the subject gave
    vocab_size = refs.config["vocab_size"]
    order = {n: i for i, n in enumerate(names)}
    per_name: dict[str, dict[str, list]] = {n: {"chained": [], "isolated": [], "cached": []} for n in names}
    failures, greedy, sampled, not_run = [], [], [], {}  # failures: (rank, mode index, case index, divergence)
    for index, case in enumerate(refs.cases):
        why = subject.can_run(case) if hasattr(subject, "can_run") else None
        if why is not None:
            not_run[case.name] = why
            continue
        for mode in ("chained", "isolated", "cached"):
            if not offered[mode]:
                continue
            budget = lambda name, case_name=case.name: budgets.atol(case_name, name)  # noqa: E731
            keep = {"logits": None} if mode == "chained" else None
            if mode == "cached":
                comparisons = compare_cached(subject, case, provided, vocab_size, tol=tol, budget=budget)
            elif mode == "chained":
                comparisons = compare_chained(subject, case, provided, tol, budget, keep)
            else:
                comparisons = compare_case(subject, case, mode, provided, tol, budget)
            for c in comparisons:
                waiver = waiver_for(deviations, c.name, names)
                if waiver is not None:
                    c.waiver, c.waiver_tol = waiver.reason, waiver.tolerance
                per_name[c.name.split("@")[0]][mode].append((case.name, c))
            if keep is not None and keep["logits"] is not None:
                got, ref = keep["logits"]
                logits = distribution_logits(subject, got, ref, case)
                if logits is not None:
                    metrics.append(distribution.per_position(logits, ref, token_mask(case), case.input_ids))
            bad = earliest(comparisons, order)
            if bad is not None:
                failures.append((order[bad.name.split("@")[0]], MODES.index(mode), index,
                                 {"case": case.name, "mode": mode, "name": bad.name.split("@")[0], "message": bad.message()}))  # fmt: skip
        if offered["generate"] and case.greedy is not None:
            greedy.append(compare_greedy(subject, case))
            if not greedy[-1]["ok"]:
                failures.append((len(names) + 1, MODES.index("generate"), index,
                                 {"case": case.name, "mode": "generate", "name": "greedy generation", "message": greedy[-1]["message"]}))  # fmt: skip
        if offered["sampled"] and case.sampling is not None:
            sampled.append(sampled_result(subject, case, refs.dtype, budgets.atol(case.name, "logits")))
            if not sampled[-1]["ok"]:
                failures.append((len(names), MODES.index("sampled"), index,
                                 {"case": case.name, "mode": "sampled", "name": "sampled generation", "message": sampled[-1]["message"]}))  # fmt: skip
    rows = []
    for n in names:
        row = {"name": n, "provided": n in provided,  # every case's chained result (for --junit)
               "results": [{"case": case_name, "ok": c.ok, "waived": c.waived, "message": c.message(), "max_rel": c.max_rel,
                            "budget_rel": c.budget_rel} for case_name, c in per_name[n]["chained"]],  # fmt: skip
               "waived": next((c.waiver for pairs in per_name[n].values() for _, c in pairs if c.waived), None)}  # a reason
        for mode, pairs in per_name[n].items():
            if pairs:  # the case with the largest margin: its max abs, max rel, tolerance and margin together
                case_name, c = max(pairs, key=lambda pc: pc[1].margin)
                row[mode] = dict(c.as_dict(), case=case_name, message=c.message())
            else:
                row[mode] = None
        row["ok"] = all(row[mode]["ok"] for mode in per_name[n] if row[mode] is not None)  # ty: ignore[not-subscriptable, invalid-argument-type] (a row's mode entries are dicts or None)
        rows.append(row)
    modes = {}
    for mode, ran in offered.items():
        if not ran:
            modes[mode] = {"ran": False, "ok": None, "why": f"the subject does not offer {MODE_NEEDS[mode]!r}"}
        elif mode in ("generate", "sampled"):
            results = greedy if mode == "generate" else sampled
            what = "a greedy continuation" if mode == "generate" else "sampled generation"
            modes[mode] = {"ran": bool(results), "ok": all(g["ok"] for g in results) if results else None,
                           "why": None if results else f"no case it ran records {what}"}  # fmt: skip
        else:
            ran_rows = [r[mode] for r in rows if r[mode] is not None]
            modes[mode] = {"ran": bool(ran_rows), "ok": all(c["ok"] for c in ran_rows) if ran_rows else None,  # ty: ignore[not-subscriptable, invalid-argument-type] (a row's mode entries are dicts or None)
                           "why": None if ran_rows else "no case was run"}  # fmt: skip
    chained_all = [(case_name, c) for n in names for case_name, c in per_name[n]["chained"]]
    cases_run = [c.name for c in refs.cases if c.name not in not_run]
    logits_verified = bool(per_name["logits"]["chained"])
    dist = distribution_report(metrics, budgets)
    waived = [dict(c.as_dict(), case=case_name, mode=mode, reason=c.waiver, declared=c.waiver_tol)
              for n in names for mode, pairs in per_name[n].items() for case_name, c in pairs if c.waived]  # fmt: skip
    logits_waivers = [w["reason"] for w in waived if w["name"] == "logits"]
    if dist["ok"] is False and logits_waivers:  # the logits' declared deviation covers their distribution
        dist.update(ok=True, waived=logits_waivers[0], divergence=None)
    failures.sort(key=lambda f: f[:3])
    files_not_read = list(subject.files_not_read()) if callable(getattr(subject, "files_not_read", None)) else []
    judged = judge(require, names, provided, not_run, modes, [f[3] for f in failures], logits_verified, dist["ok"],
                   dist["divergence"] and dist["divergence"]["message"],
                   [f"{w['name']} ({w['mode']}, case {w['case']}): {w['reason']}" for w in waived], files_not_read)  # fmt: skip
    first_per_case = {}
    for *_, divergence in failures:
        first_per_case.setdefault(divergence["case"], divergence)
    largest = max(chained_all, key=lambda pc: pc[1].max_abs, default=None)
    worst_one = max(chained_all, key=lambda pc: pc[1].margin, default=None)
    compared = [r for r in rows if r["chained"] is not None]
    return {
        "subject": subject.name,
        "dtype": refs.dtype.name,
        "precision": budgets.cls.name,
        "budgets": {"calibrated": budgets.calibrated, "factor": BUDGET_FACTOR if budgets.calibrated else None,
                    "floor": budgets.cls.floor, "class": budgets.cls.description},
        "distribution": dist,
        "deviations": [d.as_dict() for d in deviations],
        "waived": waived,
        "cases": [c.name for c in refs.cases],
        "cases_run": cases_run,
        "cases_not_run": not_run,
        "checkpoints_provided": len(provided),
        "checkpoints_total": len(names),
        "checkpoints_compared": len(compared),
        "checkpoints_passed": sum(r["chained"]["ok"] and r["ok"] for r in compared),  # ty: ignore[not-subscriptable, invalid-argument-type, no-matching-overload] (a row's mode entries are dicts or None)
        "checkpoints_waived": sum(r["waived"] is not None and r["ok"] for r in compared),  # ty: ignore[no-matching-overload] (a row's mode entries are dicts or None)
        "not_provided": [n for n in names if n not in provided],
        "require": require,
        "modes": modes,
        "files_not_read": files_not_read,
        "ok": not judged.failed,
        "complete": not judged.left_out,
        "verdict": judged.verdict,
        "reasons": list(judged.reasons),
        "left_out": list(judged.left_out),
        "max_abs": largest[1].max_abs if largest else float("nan"),
        "max_abs_at": {"name": largest[1].name, "case": largest[0]} if largest else None,
        "max_rel": max((c.max_rel for _, c in chained_all), default=float("nan")),
        "worst_margin": worst_one[1].margin if worst_one else float("nan"),
        "worst_margin_at": {"name": worst_one[1].name, "case": worst_one[0]} if worst_one else None,
        "first_divergence": (failures[0][3] if failures else dist["divergence"]) if logits_verified else
            {"case": None, "mode": "chained", "name": "logits", "message": "logits were verified on no case (the subject ran none)"},
        "first_per_case": first_per_case,
        "notes": list(getattr(subject, "notes", [])),
        "entries_compared": sum(c.compared for _, c in chained_all),
        "entries_excluded": sum(c.excluded for _, c in chained_all),
        "checkpoints": rows,
        "generate": greedy,
        "sampled": sampled,
    }  # fmt: skip


def earliest(comparisons: list[Comparison], order: dict) -> Comparison | None:
    """The failing comparison earliest in forward-pass order (a decoding step's checkpoint ranks as the
    checkpoint; among equals, the first given)."""
    return min((c for c in comparisons if not c.ok), key=lambda c: order[c.name.split("@")[0]], default=None)


def budgets_of(subject, refs):
    """The Budgets (precision.budgets) `subject` is held to on `refs`: its precision class's (default the set's dtype)."""
    return budgets_for(refs, getattr(subject, "precision", refs.dtype.name))


def distribution_logits(subject, got, ref: np.ndarray, case) -> np.ndarray | None:
    """The subject's logits of the case in the case's layout, or None when they cannot be read as the
    reference's [B, T, V] with finite values at every token (the logits comparison reports why)."""
    tokens = token_mask(case)
    try:
        got = in_case_layout(subject, "logits", got, tokens)
    except DumpError:
        return None
    if not isinstance(got, np.ndarray) or got.dtype.kind != "f" or got.shape != ref.shape:
        return None
    return got if np.all(np.isfinite(got[tokens])) else None


def distribution_report(metrics: list[dict], budgets) -> dict:
    """The next-token distribution summary over the cases, with the budgets of KL mean and max (from the
    honest implementation; none uncalibrated) and `ok` (None: nothing judged); `divergence` names a breach."""
    out = dict(distribution.summary(metrics), budget=budgets.distribution(), ok=None, divergence=None)
    held = out["budget"]
    if held is not None and metrics:
        over = [k for k in ("kl_mean", "kl_max") if not out[k] <= held[k]]
        out["ok"] = not over
        if over:
            k = over[0]
            out["divergence"] = {"case": None, "mode": "chained", "name": "logits (distribution)",
                                 "message": f"next-token KL divergence {k.split('_')[1]} {out[k]:.3e} nats exceeds its budget {held[k]:.3e}"}  # fmt: skip
    return out


def verify_model(model_dir, factory=None, dtypes=("float32", "float64"), reference_dirs=None, prompts=None,
                 full_length: bool = False, command: str | None = None, require: str = "offered",
                 cache: bool = True) -> dict:  # fmt: skip
    """Verify the subject `factory(model_dir, dtype)` makes (default: gpt2core's NumPy engine) on model_dir
    against transformers, one run per dtype.

    model_dir is a gpt2core.verification.model_dir.ModelDir (or a path, read once here). The reference
    sets are read from `reference_dirs` (those of the given dtypes), or taken from the reference cache
    (gpt2core.verification.reference_cache: captured from transformers once per weights, cases, dtype and
    versions), or with cache=False captured into a temporary directory (`prompts`, or the built-in cases). Memory (gpt2core.verification.memory): a run
    that cannot fit is refused before anything is loaded; every reference set is captured first and
    transformers' model released, then each dtype's subject is made, verified and released in turn, so the
    two models are never resident together. Returns {"ok", "verdict", "model", "weights_sha256",
    "versions", "memory", "peak_rss_bytes", "runs": [verify_references(...) + "references"]}.
    """
    from .cases import cases_for
    from .hf import release_hf_models, require_transformers
    from .model_dir import read_model_dir

    from .numpy_subject import numpy_subject

    if factory is None:
        factory = numpy_subject
    model_dir = read_model_dir(model_dir)
    if reference_dirs:
        ref_sets = [load_references(d, model_dir) for d in reference_dirs]
        shapes = [c.input_ids.shape for r in ref_sets for c in r.cases]
        wanted = [r.dtype.name for r in ref_sets if r.dtype.name in dtypes]
    else:
        cases = cases_for(model_dir, prompts, full_length)
        shapes, wanted = [c.input_ids.shape for c in cases], list(dtypes)
    plan = run_memory(model_dir.config, shapes, wanted or dtypes)
    check_fits(plan, "this verify run")
    if not reference_dirs and not (cache and all(is_cached(cache_root(), model_dir, dt, cases) for dt in dtypes)):
        require_transformers()  # imported before the baseline is read: its libraries are not the run's
    reset_peak_rss()
    baseline = current_rss_bytes()
    runs = []
    with tempfile.TemporaryDirectory(prefix="gpt2core-references-") as tmp:
        if not reference_dirs and cache:
            ref_sets = []
            for dt in dtypes:
                ref_sets.append(cached_references(cache_root(), model_dir, dt, cases, lambda: tmp, command=command, capped=True))  # ty: ignore[invalid-argument-type] (None: write_references records the argv)
                release_hf_models()  # before the next dtype's model, and before any engine (a no-op on a hit)
        elif not reference_dirs:
            for dt in dtypes:
                write_references(model_dir, Path(tmp) / dt, cases, dt, command=command)
                release_hf_models()  # before the next dtype's model, and before any engine
            ref_sets = [load_references(Path(tmp) / dt, model_dir) for dt in dtypes]
        for refs in ref_sets:
            if refs.dtype.name not in dtypes:
                continue
            subject = factory(model_dir, refs.dtype)
            check_subject(subject)
            ensure_budgets(refs, model_dir, getattr(subject, "precision", refs.dtype.name), command=command)
            run = verify_references(subject, refs, require=require)
            del subject  # released before the next dtype's engine is loaded
            give_back_freed_memory()
            run["references"] = str(refs.root) if reference_dirs or cache else "(temporary, built by this run)"
            runs.append(run)
    if not runs:
        raise ValueError(f"no reference set in {[str(d) for d in reference_dirs]} has dtype {' or '.join(dtypes)}")  # ty: ignore[not-iterable] (no run only when reference_dirs were given or dtypes is empty)
    # the kernel's two counters (VmHWM, the resident size) may disagree by a few hundred KB of per-thread slack:
    # on a run that grew nothing the peak came out 0.1-0.2 MB below the baseline; the run held at least that
    peak = max(peak_rss_bytes(), baseline)
    own_engine = factory is numpy_subject
    memory = dict(plan, baseline_rss_bytes=baseline, peak_rss_bytes=peak, peak_over_baseline_bytes=peak - baseline,
                  within_bound=peak - baseline <= plan["bound_bytes"], children_peak_rss_bytes=children_peak_rss_bytes(),
                  own_engine=own_engine, bound_applies=own_engine and plan["weights_bytes"] >= BOUND_FROM_BYTES)  # fmt: skip
    verdict = combine([r["verdict"] for r in runs])
    return {"ok": verdict == "PASS", "verdict": verdict, "model": str(model_dir), "weights_sha256": model_dir.weights_sha256,
            "versions": versions(), "memory": memory, "peak_rss_bytes": peak, "runs": runs}  # fmt: skip
