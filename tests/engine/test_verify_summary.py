"""What verify_references makes of a run, field by field, against a ledger built from the comparisons themselves.

Each scenario is one of support.verdict_subjects' altered engines under one `require`, verified once on the short
cases (support.references.SHORT_PROMPTS) of the tiny model in float64. The ledger is every comparison the run is made
of, computed here with verify's own comparison functions (compare_chained, compare_case, compare_cached,
compare_greedy, sampled_result: their correctness is the parity and negative suites' business); every field of the
run's summary is then derived from the ledger by the rule its docstring states, written out plainly, and must equal
the run's. These tests are the cheap killers of verify_references' mutants: one scenario costs about 0.2 s where the
command-level tests of the same rules cost 0.5-4 s (docs/mutation.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from gpt2core.verification.atomic import atomic_write_text
from gpt2core.verification.batch_layout import token_mask
from gpt2core.verification.precision import distribution
from gpt2core.verification.precision.deviations import parse_deviations, waiver_for
from gpt2core.verification.subject import MODES, modes_of
from gpt2core.verification.tolerances import BUDGET_FACTOR
from gpt2core.verification.verify import (MODE_NEEDS, budgets_of, compare_cached, compare_chained, compare_case,
                                          compare_greedy, sampled_result, verify_references)

def last_token_moved(inner, on=lambda case: True):
    """`inner`'s generate with the last generated token of every row moved, on the cases `on` selects."""

    def generate(case, n):
        ids = np.array(inner.generate(case, n))
        if on(case):
            ids[:, -1] = (ids[:, -1] + 1) % 50
        return ids

    return generate


def greedy_off(model_dir, dtype):
    """The last generated token moved on the spoiled case: greedy generation fails, sampled generation passes."""
    from support.verdict_subjects import SPOILED_CASE, Altered

    from gpt2core.verification.numpy_subject import numpy_subject

    inner = numpy_subject(model_dir, dtype)
    return Altered(inner, generate=last_token_moved(inner, lambda case: case.name == SPOILED_CASE))


def generations_off(model_dir, dtype):
    """Both generations off on every case that records them (every kept sampled score raised by 1e-3): sampled
    generation ranks before greedy generation."""
    from support.verdict_subjects import Altered

    from gpt2core.verification.numpy_subject import numpy_subject

    inner = numpy_subject(model_dir, dtype)

    def sample_scores(case, settings, path_ids):
        return {k: np.where(np.isfinite(s), s + 1e-3, s) for k, s in inner.sample_scores(case, settings, path_ids).items()}

    return Altered(inner, generate=last_token_moved(inner), sample_scores=sample_scores)


def waived_and_after(model_dir, dtype):
    """The spoiled checkpoint's deviation declared for it and every checkpoint after it."""
    from support.verdict_subjects import SPOILED, waived

    subject = waived(model_dir, dtype)
    subject.deviations = [{"checkpoints": SPOILED, "tolerance": 0.1, "reason": "and after", "and_after": True}]
    return subject


def no_stages(model_dir, dtype):
    """Every mode but isolated: the modes after one not offered still run."""
    from support.verdict_subjects import passing

    subject = passing(model_dir, dtype)
    subject.capabilities = frozenset({"decode", "generate", "sample"})
    return subject


def files_left(model_dir, dtype):
    """An engine that wrote two files no comparison read, and says something about itself."""
    from support.verdict_subjects import passing

    subject = passing(model_dir, dtype)
    subject.files_not_read = lambda: ["extra.npy", "notes.txt"]
    subject.notes = ["a note from the engine"]
    return subject


LOCAL = {f.__name__: f for f in (greedy_off, generations_off, waived_and_after, no_stages, files_left)}

# (factory, here or in support.verdict_subjects; require) -> the verdict the scenario is built to reach
SCENARIOS = {
    ("passing", "offered"): "PASS",
    ("passing", "all"): "PASS",
    ("spoiled", "offered"): "FAIL",
    ("waived", "offered"): "PASS",
    ("waived", "all"): "INCOMPLETE",
    ("waived_and_after", "all"): "INCOMPLETE",
    ("spoiled_step", "offered"): "FAIL",
    ("short_decode", "offered"): "FAIL",
    ("greedy_off", "offered"): "FAIL",
    ("generations_off", "offered"): "FAIL",
    ("not_providing", "offered"): "PASS",
    ("not_providing", "all"): "INCOMPLETE",
    ("refusing_a_case", "all"): "INCOMPLETE",
    ("refusing_every_case", "offered"): "FAIL",
    ("chained_only", "offered"): "PASS",
    ("chained_only", "all"): "INCOMPLETE",
    ("no_stages", "all"): "INCOMPLETE",
    ("files_left", "offered"): "PASS",
    ("files_left", "all"): "INCOMPLETE",
}


@pytest.fixture(scope="module")
def short_refs(tiny_dir, tmp_path_factory):
    from support.references import short_reference_set

    return short_reference_set(tiny_dir, np.float64, tmp_path_factory)


def ledger(subject, refs) -> dict:
    """Every comparison of the run, as verify makes them: {"rows": [(name, mode, case, Comparison)] in names, modes,
    cases order, "generate", "sampled": the results of the cases that record them, "not_run", "metrics"}."""
    names, offered = refs.checkpoint_names, modes_of(subject)
    provided = [n for n in names if n in getattr(subject, "provides", names)]
    budgets = budgets_of(subject, refs)
    deviations = parse_deviations(getattr(subject, "deviations", ()), "test")
    by_case, greedy, sampled, not_run, metrics = {}, [], [], {}, []
    for case in refs.cases:
        why = subject.can_run(case) if hasattr(subject, "can_run") else None
        if why is not None:
            not_run[case.name] = why
            continue
        for mode in ("chained", "isolated", "cached"):
            if not offered[mode]:
                continue
            budget = lambda name, c=case.name: budgets.atol(c, name)  # noqa: E731
            kept = {"logits": None}  # the chained pass's logits and their reference, for the distribution
            if mode == "cached":
                found = compare_cached(subject, case, provided, refs.config["vocab_size"], tol=budgets.tol, budget=budget)
            elif mode == "chained":
                found = compare_chained(subject, case, provided, budgets.tol, budget, kept)
            else:
                found = compare_case(subject, case, mode, provided, budgets.tol, budget)
            for c in found:
                waiver = waiver_for(deviations, c.name, names)
                if waiver is not None:
                    c.waiver, c.waiver_tol = waiver.reason, waiver.tolerance
                by_case.setdefault((c.name.split("@")[0], mode, case.name), []).append(c)
            if kept["logits"] is not None:
                metrics.append(distribution.per_position(*kept["logits"], token_mask(case), case.input_ids))
        if offered["generate"] and case.greedy is not None:
            greedy.append(compare_greedy(subject, case))
        if offered["sampled"] and case.sampling is not None:
            sampled.append(sampled_result(subject, case, refs.dtype, budgets.atol(case.name, "logits")))
    rows = [(n, mode, case.name, c) for n in names for mode in ("chained", "isolated", "cached") for case in refs.cases
            for c in by_case.get((n, mode, case.name), [])]  # fmt: skip
    return {"rows": rows, "generate": greedy, "sampled": sampled, "not_run": not_run, "metrics": metrics,
            "provided": provided, "offered": offered, "budgets": budgets, "deviations": deviations}  # fmt: skip


def as_json(value) -> str:
    """`value` as sorted JSON (NaN written as NaN, so two NaNs are equal)."""
    return json.dumps(value, sort_keys=True, default=str)


def expected_summary(subject, refs, require: str, made: dict) -> dict:
    """The run verify_references must return, derived from the ledger by the rules of its docstring."""
    names, rows, cases = refs.checkpoint_names, made["rows"], [c.name for c in refs.cases]
    chained = [(case, c) for _, mode, case, c in rows if mode == "chained"]
    per_row = []
    for n in names:
        row = {"name": n, "provided": n in made["provided"],
               "results": [{"case": case, "ok": c.ok, "waived": c.waived, "message": c.message(), "max_rel": c.max_rel,
                            "budget_rel": c.budget_rel} for name, mode, case, c in rows if name == n and mode == "chained"],
               "waived": next((c.waiver for name, _, _, c in rows if name == n and c.waived), None)}  # fmt: skip
        for mode in ("chained", "isolated", "cached"):
            mine = [(case, c) for name, m, case, c in rows if name == n and m == mode]
            worst = max(mine, key=lambda pair: pair[1].margin, default=None)  # the first of the largest margins
            row[mode] = None if worst is None else dict(worst[1].as_dict(), case=worst[0], message=worst[1].message())
        row["ok"] = all(c.ok for name, _, _, c in rows if name == n)
        per_row.append(row)
    modes = {}
    for mode in MODES:
        if not made["offered"][mode]:
            modes[mode] = {"ran": False, "ok": None, "why": f"the subject does not offer {MODE_NEEDS[mode]!r}"}
            continue
        if mode in ("generate", "sampled"):
            results = made[mode]
            oks = [r["ok"] for r in results]
            what = "a greedy continuation" if mode == "generate" else "sampled generation"
            why = None if results else f"no case it ran records {what}"
        else:
            oks = [r[mode]["ok"] for r in per_row if r[mode] is not None]
            why = None if oks else "no case was run"
        modes[mode] = {"ran": bool(oks), "ok": all(oks) if oks else None, "why": why}
    # the first divergence: earliest checkpoint, then mode, then case; greedy after sampled after every checkpoint
    failing = [((names.index(n), MODES.index(mode), cases.index(case)), {"case": case, "mode": mode, "name": n, "message": c.message()})
               for n, mode, case, c in rows if not c.ok]  # fmt: skip
    failing += [((len(names), MODES.index("sampled"), cases.index(s["case"])),
                 {"case": s["case"], "mode": "sampled", "name": "sampled generation", "message": s["message"]})
                for s in made["sampled"] if not s["ok"]]  # fmt: skip
    failing += [((len(names) + 1, MODES.index("generate"), cases.index(g["case"])),
                 {"case": g["case"], "mode": "generate", "name": "greedy generation", "message": g["message"]})
                for g in made["generate"] if not g["ok"]]  # fmt: skip
    firsts = {}
    for key, divergence in failing:  # one per (mode, case): its earliest checkpoint, the first given among equals
        group = (divergence["mode"], divergence["case"])
        if group not in firsts or key < firsts[group][0]:
            firsts[group] = (key, divergence)
    failures = [d for _, d in sorted(firsts.values(), key=lambda kd: kd[0])]
    budgets = made["budgets"]
    dist = dict(distribution.summary(made["metrics"]), budget=None, ok=None, divergence=None)
    assert budgets.distribution() is None, "float64 is judged by its floor alone: no distribution budget"
    waived = [dict(c.as_dict(), case=case, mode=mode, reason=c.waiver, declared=c.waiver_tol) for _, mode, case, c in rows if c.waived]
    left_out = [f"checkpoint {n} not provided" for n in names if n not in made["provided"]]
    left_out += [f"case {case} not run ({why})" for case, why in made["not_run"].items()]
    left_out += [f"mode {mode} not run ({m['why']})" for mode, m in modes.items() if not m["ran"]]
    left_out += [f"waived: {w['name']} ({w['mode']}, case {w['case']}): {w['reason']}" for w in waived]
    files_not_read = list(getattr(subject, "files_not_read", list)())
    left_out += [f"file not read: {f}" for f in files_not_read]
    failed = [f"{f['name']} ({f['mode']}, case {f['case']}): {f['message'].removeprefix(f['name'] + ': ')}" for f in failures]
    logits_verified = any(n == "logits" for n, mode, _, _ in rows if mode == "chained")
    if not logits_verified:
        failed.append("the logits were compared on no case: nothing was verified")
    verdict = "FAIL" if failed else "INCOMPLETE" if require == "all" and left_out else "PASS"
    first_per_case = {}
    for f in failures:
        first_per_case.setdefault(f["case"], f)
    largest = max(chained, key=lambda pair: pair[1].max_abs, default=None)
    worst_margin = max(chained, key=lambda pair: pair[1].margin, default=None)
    compared = [r for r in per_row if r["chained"] is not None]
    return {
        "subject": subject.name, "dtype": "float64", "precision": budgets.cls.name,
        "budgets": {"calibrated": budgets.calibrated, "factor": BUDGET_FACTOR if budgets.calibrated else None,
                    "floor": budgets.cls.floor, "class": budgets.cls.description},
        "distribution": dist, "deviations": [d.as_dict() for d in made["deviations"]], "waived": waived,
        "cases": cases, "cases_run": [c for c in cases if c not in made["not_run"]], "cases_not_run": made["not_run"],
        "checkpoints_provided": len(made["provided"]), "checkpoints_total": len(names), "checkpoints_compared": len(compared),
        "checkpoints_passed": sum(r["ok"] for r in compared), "checkpoints_waived": sum(r["ok"] and r["waived"] is not None for r in compared),
        "not_provided": [n for n in names if n not in made["provided"]], "require": require, "modes": modes,
        "files_not_read": files_not_read, "ok": verdict != "FAIL", "complete": not left_out, "verdict": verdict,
        "reasons": failed if verdict == "FAIL" else left_out if verdict == "INCOMPLETE" else [], "left_out": left_out,
        "max_abs": largest[1].max_abs if largest else float("nan"),
        "max_abs_at": {"name": largest[1].name, "case": largest[0]} if largest else None,
        "max_rel": max((c.max_rel for _, c in chained), default=float("nan")),
        "worst_margin": worst_margin[1].margin if worst_margin else float("nan"),
        "worst_margin_at": {"name": worst_margin[1].name, "case": worst_margin[0]} if worst_margin else None,
        "first_divergence": (failures[0] if failures else None) if logits_verified else
            {"case": None, "mode": "chained", "name": "logits", "message": "logits were verified on no case (the subject ran none)"},
        "first_per_case": first_per_case, "notes": list(getattr(subject, "notes", [])),
        "entries_compared": sum(c.compared for _, c in chained), "entries_excluded": sum(c.excluded for _, c in chained),
        "checkpoints": per_row, "generate": made["generate"], "sampled": made["sampled"],
    }  # fmt: skip


# Under mutmut, a mutant of verify_references cannot change the ledger or the summary derived from it: neither calls
# verify_references. So under such a mutant the expected summary is read from the copy that mutmut's unmutated runs
# (its stats pass, MUTANT_UNDER_TEST=stats, and its clean run, "") wrote in its working directory, as
# support.verdict_subjects.verify_report does for the report's mutants: the ledger is half of a scenario's cost. Any
# other mutant (one of the comparisons the ledger uses), and every run outside mutmut, derives it afresh.
UNMUTATED_SUMMARIES = Path(".unmutated-verify-summaries")
REUSED_UNDER = "gpt2core.verification.verify.x_verify_references__mutmut_"


def expected_for(subject, refs, require: str, scenario: str) -> dict:
    """expected_summary's dict as JSON gives it back (so the fresh and the stored copies compare alike)."""
    mutant = os.environ.get("MUTANT_UNDER_TEST")
    copy = UNMUTATED_SUMMARIES / f"{scenario}.json"
    if mutant is not None and mutant.startswith(REUSED_UNDER) and copy.is_file():
        return json.loads(copy.read_text())
    text = as_json(expected_summary(subject, refs, require, ledger(subject, refs)))
    if mutant in ("stats", ""):
        UNMUTATED_SUMMARIES.mkdir(exist_ok=True)
        atomic_write_text(copy, text)  # a reader sees the whole summary or none
    return json.loads(text)


@pytest.mark.parametrize(("factory", "require"), list(SCENARIOS), ids=[f"{f}-{r}" for f, r in SCENARIOS])
def test_every_field_of_a_run_follows_from_its_comparisons(tiny_dir, short_refs, factory, require):
    import support.verdict_subjects as subjects

    make = LOCAL[factory] if factory in LOCAL else getattr(subjects, factory)
    subject = make(tiny_dir, "float64")  # gives the same answers every time it is asked
    # "offered" is verify_references' default: left to it
    run = verify_references(subject, short_refs) if require == "offered" else verify_references(subject, short_refs, require=require)
    assert run["verdict"] == SCENARIOS[factory, require], run["reasons"]
    expected = expected_for(subject, short_refs, require, f"{factory}-{require}")
    assert sorted(run) == sorted(expected), set(run) ^ set(expected)
    for key in expected:  # field by field, so a failure names the field and prints both
        assert as_json(run[key]) == as_json(expected[key]), (key, run[key], expected[key])
