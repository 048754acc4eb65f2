"""Every output of `gpt2core verify` says the same verdict: the exit status, the JSON, the text report, the JUnit
XML (failures and errors), the HTML page, and the audit built on it. One scenario per way a verdict is reached,
each through the command line with a subject of tests/support/verdict_subjects.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from support.inprocess import run_command
from support.pages import Page
from support.verdict_subjects import verify_with

from gpt2core.audit import run_audit
from gpt2core.cli import EXIT_CODES
from gpt2core.mutation import score
from gpt2core.report import audit_html, format_verify, verify_html

# subject factory (support.verdict_subjects), --require, the verdict, a fragment of the reasons or of what was left out
SCENARIOS = [
    ("passing", "offered", "PASS", None),
    ("passing", "all", "PASS", None),
    ("spoiled", "offered", "FAIL", "h1.mlp_out (chained, case hello): "),
    ("spoiled", "all", "FAIL", "h1.mlp_out (chained, case hello): "),
    ("spoiled_step", "offered", "FAIL", "logits (cached, case hello): "),
    ("short_decode", "offered", "FAIL", "decode yielded"),
    ("refusing_every_case", "offered", "FAIL", "the logits were compared on no case"),
    ("waived", "offered", "PASS", "waived: h1.mlp_out (chained, case hello): a test's declared deviation"),
    ("waived", "all", "INCOMPLETE", "waived: h1.mlp_out (chained, case hello): a test's declared deviation"),
    ("not_providing", "offered", "PASS", "checkpoint h0.attn_probs not provided"),
    ("not_providing", "all", "INCOMPLETE", "checkpoint h0.attn_probs not provided"),
    ("refusing_a_case", "offered", "PASS", "case padded_batch not run (the test says so)"),
    ("refusing_a_case", "all", "INCOMPLETE", "case padded_batch not run (the test says so)"),
    ("chained_only", "offered", "PASS", "mode isolated not run"),
    ("chained_only", "all", "INCOMPLETE", "mode sampled not run"),
]


def verify(tiny_dir, tmp_path, factory: str, require: str):
    """gpt2core verify on the tiny model in float64: (exit status, JSON report, JUnit, HTML)."""
    junit, html = tmp_path / "junit.xml", tmp_path / "verify.html"
    rc, report = verify_with(tiny_dir, factory, "--require", require, "--junit", str(junit), "--html", str(html))
    return rc, report, JUnitXml.fromfile(str(junit)), html.read_text()


def junit_counts(xml) -> dict:
    cases = [c for suite in xml for c in suite]
    kinds = [type(c.result[0]) if c.result else None for c in cases]
    return {"failures": kinds.count(Failure), "errors": kinds.count(Error), "skipped": kinds.count(Skipped)}


CAUGHT_ONE = {"model": "stress", "caught": 1, "total": 1, "faults": [], "weights_sha256": {}}


def audited(report: dict, tiny_dir, monkeypatch, faults: dict = CAUGHT_ONE) -> dict:
    """The audit with this verify report, this fault catalogue report (by default one that caught its one fault)
    and mutation testing that passed: with the default, the audit's verdict is the verify run's, everything required."""
    import gpt2core.audit as audit

    monkeypatch.setattr(audit, "verify_model", lambda *a, **k: report)
    monkeypatch.setattr(audit, "catalogue_on", lambda *a, **k: faults)
    monkeypatch.setattr(audit, "mutation_results", lambda *a, **k: score({"m_1": 1}, {}).as_dict(0.95))
    return run_audit(tiny_dir, tiny_dir)


@pytest.mark.parametrize("factory, require, verdict, reason", SCENARIOS, ids=[f"{f}-{r}" for f, r, *_ in SCENARIOS])
def test_every_output_says_the_verdict(factory, require, verdict, reason, tiny_dir, tmp_path, monkeypatch):
    rc, report, xml, html = verify(tiny_dir, tmp_path, factory, require)
    (run,) = report["runs"]
    assert (report["verdict"], run["verdict"]) == (verdict, verdict), run["reasons"] or run["left_out"]
    assert rc == EXIT_CODES[verdict] and report["ok"] == (verdict == "PASS") == (rc == 0)
    said = run["reasons"] + run["left_out"]
    assert reason is None and not said or any(reason in r for r in said), said
    assert (verdict == "FAIL") == bool(run["reasons"]) == (not run["ok"]) or verdict == "INCOMPLETE" and run["reasons"]
    for mode, m in run["modes"].items():  # a mode that ran has a verdict and no excuse; one that did not, the reverse
        assert isinstance(m["ran"], bool) and (m["ok"] is None) == (m["why"] is not None) == (not m["ran"]), (mode, m)
    # the text report: the headline, the reasons, the closing line
    text = format_verify(report).splitlines()
    assert text[0].startswith(f"float64: {verdict} - subject ") and text[-1].startswith(f"verify: {verdict} - ")
    lines = {line.split(" (")[0]: line for line in text if line.startswith(("why ", "left out"))}
    if verdict == "PASS":
        assert set(lines) == ({"left out"} if run["left_out"] else set())
    else:
        assert reason in lines[f"why {verdict}"]
    # JUnit: green exactly for a PASS; an INCOMPLETE is never green
    counts = junit_counts(xml)
    assert (counts["failures"] + counts["errors"] == 0) == (verdict == "PASS"), counts
    # the HTML page and the audit's page
    assert Page(html).headings == [f"gpt2core verify: {verdict}", f"Parity with transformers: {verdict}", f"float64: {verdict}"]
    assert ('class="pass">' in html.split("</h1>")[0]) == (verdict == "PASS")  # green only for a PASS
    audit = audited(report, tiny_dir, monkeypatch)
    expected = verdict if verdict == "FAIL" or not run["left_out"] else "INCOMPLETE"  # an audit requires everything
    assert audit["verdict"] == expected and audit["ok"] == (expected == "PASS")
    assert Page(audit_html(audit)).headings[:3] == [f"gpt2core audit: {expected}", f"Parity with transformers: {verdict}",
                                               f"float64: {verdict}"]  # fmt: skip
    assert Page(verify_html(report)).headings == Page(html).headings


def test_a_distribution_out_of_its_budget_fails_every_output(tiny_dir, tmp_path, monkeypatch):
    """Every checkpoint passes, but the next-token distribution exceeds its budget (budgets that nothing meets,
    through the real distribution_report): FAIL, said by every output."""
    import gpt2core.verification.verify as verify_module

    class Unmeetable:
        def distribution(self):
            return {"kl_mean": -1.0, "kl_max": -1.0, "honest": {"kl_max": 0.0, "top1_agreement": 1.0}}

    real = verify_module.distribution_report
    monkeypatch.setattr(verify_module, "distribution_report", lambda metrics, budgets: real(metrics, Unmeetable()))
    rc, report, xml, html = verify(tiny_dir, tmp_path, "passing", "offered")
    (run,) = report["runs"]
    assert rc == 1 and report["verdict"] == run["verdict"] == "FAIL"
    assert all(r["chained"]["ok"] for r in run["checkpoints"])  # nothing else failed
    assert run["reasons"] == [f"next-token distribution: {run['distribution']['divergence']['message']}"]
    assert "next-token KL divergence mean" in run["reasons"][0] and "exceeds its budget -1.000e+00" in run["reasons"][0]
    assert junit_counts(xml)["failures"] >= 1 and Page(html).headings[0] == "gpt2core verify: FAIL"
    assert "why FAIL (1): next-token distribution:" in format_verify(report)


def test_the_verdict_over_dtypes_is_the_worst_runs(tiny_dir):
    """float64 passes and float32 fails (the subject spoils float32 only): the command's verdict is FAIL."""
    rc, printed = run_command(["verify", "--model", str(tiny_dir), "--subject", "support.verdict_subjects:spoiled_in_float32", "--json"])
    report = json.loads(printed.splitlines()[-1])
    verdicts = {r["dtype"]: r["verdict"] for r in report["runs"]}
    assert verdicts == {"float32": "FAIL", "float64": "PASS"} and report["verdict"] == "FAIL" and rc == 1


class WithoutGeneration:
    """A reference set whose cases record no greedy continuation and no sampled path (as the conformance suite's
    drawn cases): the generate and sampled modes have nothing to run."""

    class Case:
        greedy = sampling = None

        def __init__(self, case):
            self.case = case

        def __getattr__(self, attr):
            return getattr(self.case, attr)

    def __init__(self, refs):
        self.refs, self.cases = refs, [self.Case(c) for c in refs.cases]

    def __getattr__(self, attr):
        return getattr(self.refs, attr)


def test_a_mode_offered_with_nothing_to_run_is_not_run_never_passed(tiny_dir, tmp_path_factory):
    from support.references import reference_set

    from gpt2core.verification.verify import verify_references
    from support.verdict_subjects import passing

    refs = WithoutGeneration(reference_set(tiny_dir, np.float64, tmp_path_factory))
    for require, verdict in (("offered", "PASS"), ("all", "INCOMPLETE")):
        run = verify_references(passing(tiny_dir, "float64"), refs, require=require)
        assert run["modes"]["generate"] == {"ran": False, "ok": None, "why": "no case it ran records a greedy continuation"}
        assert run["modes"]["sampled"] == {"ran": False, "ok": None, "why": "no case it ran records sampled generation"}
        assert run["verdict"] == verdict and run["generate"] == run["sampled"] == []
        assert run["left_out"] == ["mode generate not run (no case it ran records a greedy continuation)",
                                   "mode sampled not run (no case it ran records sampled generation)"]  # fmt: skip


def test_a_subject_that_refuses_every_case_ran_no_mode(tiny_dir, tmp_path_factory):
    """Every mode offered, no case run: each mode is NOT RUN with its reason, none has a verdict."""
    from support.references import reference_set
    from support.verdict_subjects import refusing_every_case

    from gpt2core.verification.verify import verify_references

    run = verify_references(refusing_every_case(tiny_dir, "float64"), reference_set(tiny_dir, np.float64, tmp_path_factory))
    assert run["verdict"] == "FAIL" and run["cases_run"] == [], run["reasons"]
    why = {"generate": "no case it ran records a greedy continuation", "sampled": "no case it ran records sampled generation"}
    assert run["modes"] == {mode: {"ran": False, "ok": None, "why": why.get(mode, "no case was run")} for mode in run["modes"]}
    assert set(run["modes"]) == {"chained", "isolated", "cached", "generate", "sampled"}
    assert run["first_divergence"] == {"case": None, "mode": "chained", "name": "logits",
                                       "message": "logits were verified on no case (the subject ran none)"}  # fmt: skip
    assert run["budgets"]["calibrated"] is False and run["budgets"]["factor"] is None  # float64: fixed tolerances


def test_an_audit_whose_fault_catalogue_ran_nothing_is_incomplete(tiny_dir, tmp_path, monkeypatch):
    """0 of 0 faults caught is no evidence that the suites catch a broken engine: the audit says INCOMPLETE."""
    _, report, _, _ = verify(tiny_dir, tmp_path, "passing", "all")
    nothing = {**CAUGHT_ONE, "caught": 0, "total": 0}
    judged = audited(report, tiny_dir, monkeypatch, faults=nothing)
    assert (judged["verdict"], judged["missing"]) == ("INCOMPLETE", ["faults: no fault was run (0 of 0)"]), judged
