"""The verdict rule (gpt2core.verification.verdict), against a plain statement of it: every combination of
what can fail and what can be left out, under either --require; and the one verdict every output says."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from support.strategies import VERDICT_CASES, VERDICT_CHECKPOINTS, VERDICT_MODES, verdict_evidence

from gpt2core.verification.verdict import VERDICTS, combine, decide, judge


def expected_verdict(e: dict) -> str:
    """The rule as a user reads it: FAIL when anything that ran failed or nothing was verified; INCOMPLETE when
    --require all and anything was left out; else PASS."""
    anything_failed = bool(e["failures"]) or e["distribution_ok"] is False or not e["logits_compared"]
    anything_left_out = (set(e["checkpoints"]) - set(e["provided"]) or e["cases_not_run"] or e["waived"]
                         or e["files_not_read"] or not all(m["ran"] for m in e["modes"].values()))  # fmt: skip
    if anything_failed:
        return "FAIL"
    return "INCOMPLETE" if e["require"] == "all" and anything_left_out else "PASS"


def check(e: dict) -> None:
    v = judge(**e)
    assert v.verdict == expected_verdict(e), (e, v)
    assert v.ok == (v.verdict == "PASS")
    # every reason is named: each failure by its mode, case and checkpoint, each thing left out by what it is
    for f in e["failures"]:
        assert any(r.startswith(f"{f['name']} ({f['mode']}, case {f['case']}): ") and f["message"] in r for r in v.failed), (f, v.failed)
    assert ("next-token distribution: KL mean over its budget" in v.failed) == (e["distribution_ok"] is False)
    assert ("the logits were compared on no case: nothing was verified" in v.failed) == (not e["logits_compared"])
    assert len(v.failed) == len(e["failures"]) + (e["distribution_ok"] is False) + (not e["logits_compared"])
    missing = [n for n in e["checkpoints"] if n not in e["provided"]]
    not_run = [m for m, s in e["modes"].items() if not s["ran"]]
    assert [r for r in v.left_out if r.startswith("checkpoint ")] == [f"checkpoint {n} not provided" for n in missing]
    assert [r for r in v.left_out if r.startswith("case ")] == [f"case {c} not run ({w})" for c, w in e["cases_not_run"].items()]
    assert [r for r in v.left_out if r.startswith("mode ")] == [f"mode {m} not run ({m} not offered)" for m in not_run]
    assert [r for r in v.left_out if r.startswith("waived: ")] == [f"waived: {w}" for w in e["waived"]]
    assert [r for r in v.left_out if r.startswith("file not read: ")] == [f"file not read: {f}" for f in e["files_not_read"]]
    assert len(v.left_out) == len(missing) + len(e["cases_not_run"]) + len(not_run) + len(e["waived"]) + len(e["files_not_read"])
    # what the verdict rests on: a FAIL its failures, an INCOMPLETE what was left out, a PASS nothing
    assert v.reasons == {"FAIL": v.failed, "INCOMPLETE": v.left_out, "PASS": ()}[v.verdict]
    assert v.verdict == "PASS" or v.reasons


@given(verdict_evidence())
def test_the_verdict_follows_the_rule_on_drawn_runs(e):
    check(e)


@given(verdict_evidence())
def test_more_failed_or_left_out_never_makes_a_better_verdict(e):
    """Monotone: adding a failure, or something left out, or requiring all, never improves the verdict."""
    rank = VERDICTS.index
    base = rank(judge(**e).verdict)
    worse = [
        dict(e, failures=[*e["failures"], {"mode": "cached", "case": "hello", "name": "logits", "message": "off"}]),
        dict(e, distribution_ok=False),
        dict(e, logits_compared=False),
        dict(e, provided=[]),
        dict(e, cases_not_run={**e["cases_not_run"], "extra": "why"}),
        dict(e, modes={**e["modes"], "sampled": {"ran": False, "why": "not offered"}}),
        dict(e, waived=[*e["waived"], "ln_f: declared"]),
        dict(e, files_not_read=[*e["files_not_read"], "x.npy"]),
        dict(e, require="all"),
    ]
    for w in worse:
        assert rank(judge(**w).verdict) >= base, (e, w)


# the dimensions that matter, every combination: (name, what it sets when on)
DIMENSIONS = [
    ("a chained comparison fails", lambda e: e["failures"].append({"mode": "chained", "case": "hello", "name": "h0.mlp_out", "message": "m"})),
    ("an isolated comparison fails", lambda e: e["failures"].append({"mode": "isolated", "case": "one_token", "name": "ln_f", "message": "m"})),
    ("a decoding step fails", lambda e: e["failures"].append({"mode": "cached", "case": "padded_batch", "name": "logits", "message": "m"})),
    ("greedy generation fails", lambda e: e["failures"].append({"mode": "generate", "case": "hello", "name": "greedy generation", "message": "m"})),
    ("sampled generation fails", lambda e: e["failures"].append({"mode": "sampled", "case": "hello", "name": "sampled generation", "message": "m"})),
    ("the distribution is out of budget", lambda e: e.update(distribution_ok=False)),
    ("the logits were compared on no case", lambda e: e.update(logits_compared=False)),
    ("a checkpoint is not provided", lambda e: e["provided"].remove("h0.attn_probs")),
    ("a case did not run", lambda e: e["cases_not_run"].update(padded_batch="runs.batch false")),
    ("a mode did not run", lambda e: e["modes"].update(cached={"ran": False, "why": "cached not offered"})),
    ("a comparison is waived", lambda e: e["waived"].append("h0.mlp_out: GELU table")),
    ("a file was not read", lambda e: e["files_not_read"].append("hello/h0.extra.npy")),
    ("--require all", lambda e: e.update(require="all")),
]  # fmt: skip


def clean_run() -> dict:
    """Everything provided, run, compared and passing, under --require offered."""
    return {"require": "offered", "checkpoints": VERDICT_CHECKPOINTS, "provided": list(VERDICT_CHECKPOINTS),
            "cases_not_run": {}, "modes": {m: {"ran": True, "why": None} for m in VERDICT_MODES}, "failures": [],
            "logits_compared": True, "distribution_ok": True, "distribution_why": "KL mean over its budget", "waived": [], "files_not_read": []}  # fmt: skip


def test_every_combination_of_what_fails_and_what_is_left_out():
    """2^13 runs: each dimension on or off. No PASS while anything failed, nor while anything was left out under
    --require all; and a clean run is a PASS under both."""
    seen = set()
    for on in itertools.product((False, True), repeat=len(DIMENSIONS)):
        e = clean_run()
        for (name, apply), enabled in zip(DIMENSIONS, on):
            if enabled:
                apply(e)
        check(e)
        v = judge(**e).verdict
        failed = any(on[:7])
        left_out = any(on[7:12])
        assert v == ("FAIL" if failed else "INCOMPLETE" if left_out and on[12] else "PASS"), [n for (n, _), o in zip(DIMENSIONS, on) if o]
        seen.add(v)
    assert seen == set(VERDICTS)


def test_require_must_be_offered_or_all():
    with pytest.raises(ValueError, match="^require must be one of offered, all, got 'some'$"):
        judge(**dict(clean_run(), require="some"))
    with pytest.raises(ValueError, match="require must be one of"):
        decide("", [], [])


def test_runs_combine_to_the_worst_verdict_and_no_run_is_no_pass():
    for n in (1, 2, 3):
        for verdicts in itertools.product(VERDICTS, repeat=n):
            expected = "FAIL" if "FAIL" in verdicts else "INCOMPLETE" if "INCOMPLETE" in verdicts else "PASS"
            assert combine(list(verdicts)) == expected, verdicts
    with pytest.raises(ValueError, match="^no verdict to combine: nothing ran$"):
        combine([])
    with pytest.raises(ValueError, match=f"^unknown verdict 'OK'; expected one of {', '.join(VERDICTS)}$"):
        combine(["PASS", "OK"])


def test_the_cases_and_checkpoints_drawn_are_the_ones_named():
    """The strategy's names reach the reasons unchanged (a guard on the test itself)."""
    e = dict(clean_run(), provided=[], cases_not_run={c: "why" for c in VERDICT_CASES}, require="all")
    v = judge(**e)
    assert v.verdict == "INCOMPLETE" and len(v.reasons) == len(VERDICT_CHECKPOINTS) + len(VERDICT_CASES)


def test_a_distribution_out_of_budget_is_a_named_failure_even_without_its_why():
    """judge called without distribution_why still names the failure in words, never an empty reason."""
    e = clean_run()
    del e["distribution_why"]
    v = judge(**dict(e, distribution_ok=False))
    assert v.verdict == "FAIL" and v.failed == ("next-token distribution: over its budget",), v
