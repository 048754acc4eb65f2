"""What the text reports and HTML pages show is what their report dicts hold: every row of every table, its
figures and its verdict, for `gpt2core verify --html`, `faults`, `mutation-score`, `budgets` and the audit page.
In-process and fast (mutmut runs these against report.py's mutants); the pages' layout in a browser is
tests/engine/test_audit_browser.py's."""

from __future__ import annotations

import copy
import json
import re

import pytest
from support.pages import Page
from support.verdict_subjects import verify_report

from gpt2core.mutation import score
from gpt2core.report import (audit_html, format_budget_table, format_faults, format_mutation_score, format_settings, format_verify,
                             verify_html)
from gpt2core.verification.precision import budgets
from gpt2core.verification.precision.classes import precision_class
from gpt2core.verification.memory import WEIGHTS_FACTOR
from gpt2core.verification.tolerances import BUDGET_FACTOR


def figure(cell: str, value, digits: int) -> None:
    """The cell shows `value` to the `digits` significant digits it is printed with ('-' for None)."""
    if value is None:
        assert cell == "-", cell
        return
    assert cell not in ("-", "") and abs(float(cell) - value) <= 0.51 * 10 ** (1 - digits) * abs(value), (cell, value)


def verdict_of(cell: str, ok: bool, page=None) -> None:
    """The cell says PASS or FAIL as `ok`, in the page's green or red (its span's class)."""
    word = cell.split(" ")[0]
    assert word == ("PASS" if ok else "FAIL"), (cell, ok)
    assert page is None or page.classes[word] == word.lower(), page.classes


@pytest.fixture(scope="module")
def verify_reports(tiny_dir):
    """`gpt2core verify --json` on the tiny model in float64, by subject (support.verdict_subjects): one that fails
    one checkpoint (spoiled), one that does not provide one (not_providing), one that refuses every case; each run
    once, when a test first asks for it (mutmut runs a mutant's tests one by one); under a report.py mutant, read
    from mutmut's unmutated run (support.verdict_subjects.verify_report)."""

    class Reports(dict):
        def __missing__(self, factory):
            self[factory] = verify_report(tiny_dir, factory)
            return self[factory]

    return Reports()


def test_checkpoints_no_case_ran_say_so(verify_reports):
    report = verify_reports["refusing_every_case"]
    page = Page(verify_html(report))
    rows = page.tables[0][1:]
    assert rows and all(r[1:8] == ["-"] * 7 and r[8] == "not compared (no case ran)" for r in rows), rows
    (summary,) = [p for p in page.paragraphs if p.startswith("cases: ")]
    assert summary.startswith("cases: ") and page.stray == []


def test_a_run_without_a_divergence_names_none(verify_reports):
    report = verify_reports["not_providing"]
    (run,) = report["runs"]
    (summary,) = [p for p in Page(verify_html(report)).paragraphs if p.startswith("cases: ")]
    assert run["first_divergence"] is None and summary.endswith(f"worst margin {run['worst_margin']:.3g}"), summary


@pytest.mark.parametrize("factory", ["spoiled", "not_providing"])
def test_the_parity_table_shows_each_checkpoint_as_the_report_has_it(verify_reports, factory):
    report = verify_reports[factory]
    (run,) = report["runs"]
    page = Page(verify_html(report))
    assert page.stray == [], page.stray
    header, *rows = page.tables[0]
    assert all(row == ["l"] + [None] * 8 for row in page.aligned[0]), page.aligned[0]  # the checkpoint's name left-aligned
    assert header == ["checkpoint", "max abs", "max rel", "tolerance", "margin", "isolated margin", "cached margin", "worst case", ""]
    assert [r[0] for r in rows] == [c["name"] for c in run["checkpoints"]]
    # the text report's table: the same figures, as printed (max abs, max rel, tolerance, margin, isolated, cached)
    text = {line.split()[0]: line.split() for line in format_verify(report).splitlines()[5:] if line.split() and line.split()[0] in {r[0] for r in rows}}
    for cells, row in zip(rows, run["checkpoints"]):
        ch = row["chained"]
        if ch is not None:
            assert cells[1:7] == text[row["name"]][1:7], (cells, text[row["name"]])
        if ch is None:
            assert cells[1:8] == ["-"] * 7 and cells[8] == "not provided by the subject" and not row["provided"], cells
            assert page.classes[cells[8]] == "fail"
            continue
        for cell, key, digits in zip(cells[1:5], ("max_abs", "max_rel", "tolerance", "margin"), (4, 4, 4, 3)):
            figure(cell, ch[key], digits)
        for cell, mode in zip(cells[5:7], ("isolated", "cached")):
            if row[mode] is None:
                assert cell == "-", cell
            else:
                figure(cell, row[mode]["margin"], 3)
        assert cells[7] == ch["case"]
        verdict_of(cells[8], row["ok"], page)
    assert any(not r["ok"] for r in run["checkpoints"]) == (factory == "spoiled")
    # the sampled generation's steps, one table per case, each step's figures and verdict
    sampled = page.tables[1 : 1 + len(run["sampled"])]
    assert len(run["sampled"]) >= 1 and len(sampled) == len(run["sampled"])
    for table, g in zip(sampled, run["sampled"]):
        assert table[0] == ["step", "max abs", "tolerance", "margin", "undecided tokens", ""]
        assert [r[0] for r in table[1:]] == [s["name"] for s in g["steps"]]
        for cells, step in zip(table[1:], g["steps"]):
            assert cells[1:4] == [f"{step['max_abs']:.3e}", f"{step['tolerance']:.3e}", f"{step['margin']:.3g}"], cells  # as the text report
            assert cells[4] == str(step["worst"].get("undecided_tokens", "-"))
            verdict_of(cells[5], step["ok"])
    said = [p for p in page.paragraphs if p.startswith("Sampled generation, case ")]
    assert [p.split(" (")[0].removeprefix("Sampled generation, case ") for p in said] == [g["case"] for g in run["sampled"]]
    assert all(f": {'PASS' if g['ok'] else 'FAIL'} " in p for p, g in zip(said, run["sampled"]))


def test_a_checkpoint_or_sampled_step_with_a_problem_shows_it_in_its_row(verify_reports):
    """A comparison that could not be made (a problem: wrong shape, not an array) says why in its row's verdict
    cell; a sampled step without a comparison has no count of undecided tokens ('-')."""
    report = copy.deepcopy(verify_reports["spoiled"])
    (run,) = report["runs"]
    row = run["checkpoints"][1]
    row["ok"], row["cached"] = False, {**row["cached"], "problem": "float32 [1, 2] != reference float64 [1, 3]"}
    step = run["sampled"][0]["steps"][0]
    step.update(ok=False, problem="expected a NumPy array, got list", worst={})
    run["sampled"][0]["steps"][1]["margin"] = 1.25e-05  # a margin small enough for an exponent
    page = Page(verify_html(report))
    assert page.tables[1][2][3] == "1.25e-05", page.tables[1][2]
    assert page.tables[0][2][0] == row["name"] and page.tables[0][2][8] == "FAIL float32 [1, 2] != reference float64 [1, 3]"
    assert page.tables[1][1][4:] == ["-", "FAIL expected a NumPy array, got list"], page.tables[1][1]


def test_the_parity_section_says_the_runs_figures(verify_reports):
    report = verify_reports["spoiled"]
    (run,) = report["runs"]
    page = Page(verify_html(report))
    assert page.stray == [], page.stray
    (summary,) = [p for p in page.paragraphs if p.startswith("cases: ")]
    assert summary.startswith(f"cases: {', '.join(run['cases'])}; max abs diff {run['max_abs']:.3e}, max rel diff {run['max_rel']:.3e}, worst margin {run['worst_margin']:.3g}")
    fd = run["first_divergence"]
    assert summary.endswith(f"; first diverging checkpoint {fd['name']} (case {fd['case']}): {fd['message']}")
    assert f"Model {report['model']}." in " ".join(page.paragraphs)


def fault(name, caught, checkpoint, margin, problem=None, by=("chained",)):
    return {"name": name, "description": f"{name}, described", "caught": caught, "expected_checkpoint": "h0.attn_probs",
            "checkpoint": checkpoint, "margin": margin, "problem": problem, "caught_by": list(by),
            "property_modules": ["test_ops", "test_invariants"] if caught else []}  # fmt: skip


FAULTS = {"model": "stress-model", "caught": 2, "total": 3, "weights_sha256": {"model.safetensors": "ab" * 32},
          "faults": [fault("no_causal_mask", True, "h0.attn_probs", 1234.5, by=("chained", "isolated")),
                     fault("nan_guard", True, None, None, "NaN at h0.q"),
                     fault("half_scale", False, "h1.q", 0.25, by=())],
          "sensitivity": {"float64": {"wte": 1e-9, "c_attn": None}, "float32": {"wte": 1e-4, "c_attn": 1e-3}}}  # fmt: skip


def test_the_fault_table_is_the_catalogues_report():
    lines = format_faults(FAULTS).splitlines()
    assert lines[0] == "fault catalogue on stress-model: 2 of 3 caught" and lines[1].split() == ["fault", "caught", "first", "diverging", "margin", "caught", "by"]
    for line, f in zip(lines[2:5], FAULTS["faults"]):
        name, caught, checkpoint, margin, *rest = line.split()
        assert (name, caught, checkpoint) == (f["name"], "yes" if f["caught"] else "NO", f["checkpoint"] or "-")
        figure(margin, f["margin"], 3)
        assert " ".join(rest) == (", ".join(f["caught_by"]) or "-") + (f" ({f['problem']})" if f["problem"] else ""), rest
    assert lines[5:] == ["smallest detected relative weight perturbation, float64: wte 1e-09, c_attn none",
                         "smallest detected relative weight perturbation, float32: wte 1e-04, c_attn 1e-03"]  # fmt: skip


def test_a_fault_report_without_a_sensitivity_scan_has_no_scan_lines():
    without = {k: v for k, v in FAULTS.items() if k != "sensitivity"}
    assert format_faults(without).splitlines() == format_faults(FAULTS).splitlines()[:5]


def test_the_fault_section_of_the_audit_page_is_the_catalogues_report():
    page = Page(audit_html(audit_report(FAULTS)))
    assert page.stray == [], page.stray
    assert "Fault catalogue: 2 of 3 caught" in page.headings
    table = next(t for t in page.tables if t[0][0] == "fault")
    aligned = page.aligned[page.tables.index(table)]
    assert all(row == ["l", "l"] + [None] * 7 for row in aligned), aligned  # name and description read left to right
    assert table[0] == ["fault", "description", "caught", "expected at", "first diverging", "margin", "problem", "caught by",
                        "property modules that fail alone"]  # fmt: skip
    text = format_faults(FAULTS).splitlines()[2:5]
    for cells, f, line in zip(table[1:], FAULTS["faults"], text, strict=True):
        assert cells[:5] == [f["name"], f["description"], "yes" if f["caught"] else "NO", f["expected_checkpoint"], f["checkpoint"] or "-"]
        figure(cells[5], f["margin"], 3)
        assert cells[5] == line.split()[3]  # the margin as the text report prints it
        assert cells[6:] == [f["problem"] or "", ", ".join(f["caught_by"]), ", ".join(f["property_modules"])]
    assert page.classes["NO"] == "fail"
    assert "Sensitivity: smallest relative weight perturbation detected" in page.headings
    sens = next(t for t in page.tables if t[0][0] == "dtype")
    assert sens == [["dtype", "wte", "c_attn"], ["float64", "1e-09", "-"], ["float32", "1e-04", "1e-03"]]


RESULTS = {"m.x_f__mutmut_1": 1, "m.x_f__mutmut_2": 1, "m.x_f__mutmut_3": 0, "m.x_f__mutmut_4": 0, "m.x_f__mutmut_5": 36, "m.x_f__mutmut_6": None,
           "m.x_f__mutmut_7": 37}  # 37: caught by the type checker


def test_an_audit_with_no_survivor_and_no_command_shows_neither():
    report = score({"m.x_f__mutmut_1": 1}, {}).as_dict(0.5)
    audit = {**audit_report(FAULTS, report), "command": None}
    page = Page(audit_html(audit))
    assert page.stray == [] and not [t for t in page.tables if t[0][0] == "surviving mutant"], page.tables
    assert "Created 2026-12-03T00:00:00+00:00 by ." in page.paragraphs  # no command: nothing in its place


def test_the_survivors_table_names_each_with_its_reason_left_aligned():
    report = score({"m.x_f__mutmut_1": 1, "m.x_f__mutmut_2": 0}, {"m.x_f__mutmut_2": "equivalent: an axis"}).as_dict(0.5)
    page = Page(audit_html(audit_report(FAULTS, report)))
    i = next(i for i, t in enumerate(page.tables) if t[0][0] == "surviving mutant")
    assert page.tables[i] == [["surviving mutant", "why it is equivalent"], ["m.x_f__mutmut_2", "equivalent: an axis"]]
    assert page.aligned[i] == [["l", "l"], ["l", "l"]]


def test_a_passing_score_says_pass():
    report = score({"m.x_f__mutmut_1": 1, "m.x_f__mutmut_2": 0}, {"m.x_f__mutmut_2": "equivalent: an axis"}).as_dict(0.5)
    assert report["passes"] and format_mutation_score(report).splitlines()[0].endswith("minimum 50%: PASS")
    assert f"Mutation testing: {report['score']:.2%} PASS" in Page(audit_html(audit_report(FAULTS, report))).headings


@pytest.mark.parametrize("triaged", [{"m.x_f__mutmut_3": "equivalent: a default no caller uses"},
                                     {"m.x_f__mutmut_3": "equivalent: a default", "m.x_f__mutmut_4": "equivalent: an axis"}])  # fmt: skip
def test_the_mutation_score_text_and_section_are_the_scores_report(triaged):
    report = score(RESULTS, triaged).as_dict(0.3)
    head, *rest = format_mutation_score(report).splitlines()
    figures = re.fullmatch(r"mutation score ([\d.]+)% \((\d+) killed of (\d+), (\d+) of them by the type checker; (\d+) survived, "
                           r"(\d+) timed out, (\d+) not checked, (\d+) other\); minimum (\d+)%: (PASS|FAIL)", head)  # fmt: skip
    assert figures, head
    assert [float(figures[1]), *map(int, figures.groups()[1:8])] == [round(100 * report["score"], 2), report["killed"], report["total"],
                                                                     report["killed_by_type_check"], report["survived"], report["timeout"],
                                                                     report["not_checked"], report["other"]]  # fmt: skip
    assert (report["killed"], report["killed_by_type_check"]) == (3, 1)
    assert int(figures[9]) == 30 and figures[10] == ("PASS" if report["passes"] else "FAIL")
    survivors = [f"  survived {s['name']}: {s['reason'] or 'NO REASON GIVEN'}" for s in report["survivors"]]
    assert rest == survivors + [f"  problem: {p}" for p in report["problems"]] and len(report["survivors"]) == 2
    assert ("NO REASON GIVEN" in rest[1]) == (len(triaged) == 1) and report["problems"]  # the not-checked mutant at least
    page = Page(audit_html(audit_report(FAULTS, report)))
    assert page.stray == [], page.stray
    assert f"Mutation testing: {report['score']:.2%} {'PASS' if report['passes'] else 'FAIL'}" in page.headings
    assert (f"{report['killed']} killed of {report['total']}, {report['killed_by_type_check']} of them by the type checker; "
            f"{report['survived']} survived, {report['timeout']} timed out, "
            f"{report['not_checked']} not checked, {report['other']} other; minimum 30%. A timeout is not a kill.") in page.paragraphs  # fmt: skip
    assert all(p in page.paragraphs for p in report["problems"])
    table = next(t for t in page.tables if t[0][0] == "surviving mutant")
    assert table == [["surviving mutant", "why it is equivalent"]] + [[s["name"], s["reason"] or "NO REASON GIVEN"] for s in report["survivors"]]


def audit_report(faults: dict, mutation: dict | None = None, missing=("mutation testing (no results)",)) -> dict:
    """An audit dict around a verify report with no runs, the given fault report and mutation report."""
    verify = {"verdict": "PASS", "model": "the-model", "runs": [], "weights_sha256": {"model.safetensors": "cd" * 32},
              "versions": {"torch": "2.13.0", "transformers": "5.24.0"}}  # fmt: skip
    return {"verdict": "INCOMPLETE", "missing": list(missing), "created": "2026-12-03T00:00:00+00:00", "command": "gpt2core audit",
            "verify": verify, "faults": faults, "mutation": mutation or {"missing": "no mutants/ directory"}}  # fmt: skip


def test_the_audit_page_names_what_did_not_run_the_weights_and_the_versions():
    audit = audit_report(FAULTS, missing=("mutation testing (no results)", "faults: no fault was run (0 of 0)"))
    page = Page(audit_html(audit))
    assert page.stray == [], page.stray
    assert page.headings == ["gpt2core audit: INCOMPLETE", "Parity with transformers: PASS", "Fault catalogue: 2 of 3 caught",
                             "Sensitivity: smallest relative weight perturbation detected", "Mutation testing: no results",
                             "Weights and versions"]  # fmt: skip
    for table, aligned in zip(page.tables, page.aligned):  # the text columns read left to right, the figures right-aligned
        left = {"fault": 2, "dtype": 1, "model": 3, "package": 2}[table[0][0]]
        assert all(row == ["l"] * left + [None] * (len(row) - left) for row in aligned), (table[0], aligned)
    assert page.headings[0] == "gpt2core audit: INCOMPLETE"
    assert [p for p in page.paragraphs if p.startswith("Not run: ")] == [f"Not run: {m}" for m in audit["missing"]]
    assert "Created 2026-12-03T00:00:00+00:00 by gpt2core audit." in page.paragraphs
    assert "Mutation testing: no results" in page.headings and "no mutants/ directory" in page.paragraphs
    hashes = next(t for t in page.tables if t[0] == ["model", "file", "sha256"])
    assert hashes[1:] == [["the-model", "model.safetensors", "cd" * 32], ["stress-model", "model.safetensors", "ab" * 32]]
    versions = next(t for t in page.tables if t[0] == ["package", "version"])
    assert versions[1:] == [["torch", "2.13.0"], ["transformers", "5.24.0"]]


def errors(**checkpoints) -> dict:
    """A {case: case_errors} entry: checkpoint -> [honest error, scale]."""
    return {"checkpoints": {k: list(v) for k, v in checkpoints.items()}}


def test_the_largest_change_between_two_measurements():
    stored = {"hello": errors(**{"h0.q": (2.0, 1.0), "h1.q": (-2.0, 4.0)}), "batch": errors(logits=(1.0, 8.0))}
    assert budgets.largest_change(stored, json.loads(json.dumps(stored))) == 0.0
    changed = json.loads(json.dumps(stored))
    changed["hello"]["checkpoints"]["h0.q"][0] = 3.0  # 2 -> 3: 1/3 of the larger
    assert budgets.largest_change(stored, changed) == 1 / 3
    changed["hello"]["checkpoints"]["h1.q"][0] = 2.0  # -2 -> 2: 4/2, the sign counts
    assert budgets.largest_change(stored, changed) == 2.0 == budgets.largest_change(changed, stored)
    assert budgets.largest_change(stored, {"hello": stored["hello"]}) == float("inf")  # another set of cases
    other = {**stored, "batch": errors(logits=(1.0, 8.0), ln_f=(1.0, 1.0))}
    assert budgets.largest_change(stored, other) == float("inf")  # another set of checkpoints


@pytest.mark.parametrize("precision", ["float16", "gguf-q8_0"])
def test_budgets_by_kind_are_the_worst_honest_error_over_layers_and_cases(precision):
    floor = precision_class(precision).floor
    doc = {"precision": precision, "cases": {
        "hello": errors(**{"h0.q": (1e-2, 4.0), "h1.q": (3e-2, 2.0), "logits": (0.0, 0.0)}),
        "batch": errors(**{"h0.q": (2e-2, 8.0), "h1.q": (1e-9, 1.0), "logits": (1e-9, 10.0)})}}  # fmt: skip
    kinds = budgets.by_kind(doc)
    assert list(kinds) == ["q", "logits"]
    assert kinds["q"]["honest_rel"] == 3e-2 / 2.0 and kinds["logits"]["honest_rel"] == 1e-9 / 10.0
    for k in kinds.values():
        assert k["budget_rel"] == max(floor, BUDGET_FACTOR * k["honest_rel"]), (k, floor)
    assert kinds["q"]["budget_rel"] > floor and kinds["logits"]["budget_rel"] == floor  # one above its floor, one at it
    text = format_budget_table({"references": "refs", "precision": precision, "path": "refs/budgets.json", "kinds": kinds})
    lines = text.splitlines()
    assert lines[:2] == [f"refs {precision}: budgets stored in refs/budgets.json", f"  {'kind':<12} {'honest rel':>10} {'budget rel':>10}"]
    for line, (kind, k) in zip(lines[2:], kinds.items(), strict=True):
        name, honest, budget = line.split()
        assert name == kind
        figure(honest, k["honest_rel"], 3), figure(budget, k["budget_rel"], 3)


def test_budgets_of_two_classes_are_stored_side_by_side_with_their_provenance(tmp_path):
    from gpt2core.verification.versions import versions

    manifest = "ab" * 32
    docs = [budgets.document({"hello": errors(**{"h0.q": (1e-3, 2.0)})}, p, manifest, f"gpt2core budgets --precision {p}")
            for p in ("float16", "bfloat16")]  # fmt: skip
    for doc in docs:
        budgets.write(tmp_path, doc)  # the second class's file beside the first's, in the same directory
    for doc in docs:
        assert budgets.read(tmp_path, doc["precision"], manifest) == json.loads(json.dumps(doc))
    assert docs[0]["command"] == "gpt2core budgets --precision float16" and docs[0]["versions"] == versions()


def test_junit_names_its_testsuites_and_refuses_an_unknown_grouping(tmp_path):
    """The JUnit file's root is the `gpt2core verify` testsuites (what a CI's test view titles it); a grouping
    other than checkpoint, kind or case is refused, naming it, before anything is written."""
    import xml.etree.ElementTree as ET

    from gpt2core.report import write_junit

    write_junit({"runs": []}, tmp_path / "junit.xml")
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert (root.tag, root.get("name"), list(root)) == ("testsuites", "gpt2core verify", [])
    with pytest.raises(ValueError) as raised:
        write_junit({"runs": []}, tmp_path / "other.xml", group="module")
    assert str(raised.value) == "JUnit group 'module'; expected checkpoint, kind or case" and not (tmp_path / "other.xml").exists()


MEMORY = {"peak_rss_bytes": 2.5e9, "peak_over_baseline_bytes": 1.25e9, "baseline_rss_bytes": 1.125e9, "children_peak_rss_bytes": 0,
          "own_engine": True, "bound_applies": True, "within_bound": True, "bound_bytes": 3.5e9, "weights_bytes": 1.5e9,
          "case_references_bytes": 0.25e9}  # fmt: skip
PEAK = "memory: peak 2.50 GB, 1.25 GB above the 1.12 GB held before the run"


@pytest.mark.parametrize("changes, line", [
    ({}, f"{PEAK}; bound 3.50 GB ({WEIGHTS_FACTOR} x 1.50 GB of weights + 0.25 GB of one case's references): within"),
    ({"within_bound": False}, f"{PEAK}; bound 3.50 GB ({WEIGHTS_FACTOR} x 1.50 GB of weights + 0.25 GB of one case's references): OVER"),
    ({"bound_applies": False}, f"{PEAK} (no bound on weights under 1 GiB: the run's fixed costs outweigh them)"),
    ({"children_peak_rss_bytes": 0.75e9}, f"{PEAK}; bound 3.50 GB ({WEIGHTS_FACTOR} x 1.50 GB of weights + 0.25 GB of one case's references): within"),
    ({"own_engine": False, "bound_applies": False, "children_peak_rss_bytes": 0.75e9},
     f"{PEAK} (the bound is for gpt2core's own engine); the engine's command peaked at 0.75 GB"),
    ({"own_engine": False, "bound_applies": False}, f"{PEAK} (the bound is for gpt2core's own engine)"),
    ({"peak_rss_bytes": 2_005_000_001, "bound_applies": False},  # GB are 1e9 bytes: 2.005000001 rounds up
     "memory: peak 2.01 GB, 1.25 GB above the 1.12 GB held before the run (no bound on weights under 1 GiB: the run's "
     "fixed costs outweigh them)"),
])  # fmt: skip
def test_the_memory_line_says_the_peak_and_judges_it_only_where_the_bound_applies(changes, line):
    """gpt2core's own engine on weights of at least 1 GiB: the peak against its bound (within or OVER); below 1 GiB,
    or another engine, no judgement and why; an engine command's own peak only for a command subject."""
    from gpt2core.report import format_memory

    assert format_memory({**MEMORY, **changes}) == line
    report = {"runs": [], "verdict": "PASS", "memory": {**MEMORY, **changes}}
    assert format_verify(report).splitlines()[-2] == line  # the text report's line above its verdict
    assert line not in format_verify({"runs": [], "verdict": "PASS"})  # a report without memory has no such line


DISTRIBUTION = {"positions": 12, "ok": True, "kl_mean": 1.5e-09, "kl_max": 2.5e-08, "top1_agreement": 0.9375, "p_top_mean": 0.123456,
                "p_top_ref_mean": 0.125, "perplexity_ratio": 1.0000126,
                "budget": {"kl_mean": 3.5e-07, "kl_max": 4.5e-06, "honest": {"kl_max": 2.25e-06, "top1_agreement": 0.96875}}}  # fmt: skip
FIGURES = ("KL mean 1.500e-09 nats{}, max 2.500e-08{}; top-1 agreement 0.9375; the reference's top token at p 0.1235 "
           "(reference 0.125); perplexity ratio 1.000013")  # fmt: skip
HELD = FIGURES.format(" (budget 3.500e-07)", " (budget 4.500e-06)") + "; the honest implementation's: KL max 2.250e-06, top-1 0.9688"


@pytest.mark.parametrize("changes, line", [
    ({}, f"next-token distribution over 12 positions: PASS: {HELD}"),
    ({"ok": False}, f"next-token distribution over 12 positions: FAIL: {HELD}"),
    ({"ok": False, "waived": "a declared deviation"}, f"next-token distribution over 12 positions: WAIVED (a declared deviation): {HELD}"),
    ({"ok": None, "budget": None}, f"next-token distribution over 12 positions: not judged: {FIGURES.format('', '')}"),
])  # fmt: skip
def test_the_distribution_line_says_its_figures_and_the_budgets_they_are_held_to(changes, line):
    from gpt2core.report import format_distribution

    assert format_distribution({**DISTRIBUTION, **changes}) == line


def test_a_waived_comparisons_line_says_waived_its_figures_and_the_reason():
    """Never a plain PASS: the checkpoint, case and mode, the difference within the declared tolerance, the margin
    against its own budget and the engine's reason, each figure as written."""
    from gpt2core.report import format_waived

    waived = {"name": "h1.attn_probs", "case": "hello", "mode": "cached", "max_rel": 0.0123456, "declared": 0.05,
              "margin": 12.3456, "tolerance": 0.000125, "reason": "fused attention kernel"}  # fmt: skip
    assert format_waived(waived) == ("WAIVED h1.attn_probs (case hello, cached): max rel diff 1.235e-02 within the declared "
                                     "5.000e-02, margin 12.3 against its budget 1.250e-04: fused attention kernel")  # fmt: skip


def junit_cases(report: dict, tmp_path, group: str = "checkpoint") -> dict:
    """write_junit's file read back: {(suite name, classname, test name): (result kind or None, its message)}."""
    from junitparser import JUnitXml

    from gpt2core.report import write_junit

    write_junit(report, tmp_path / f"{group}.xml", group=group)
    return {(suite.name, case.classname, case.name): ((type(case.result[0]).__name__, case.result[0].message) if case.result else (None, None))
            for suite in JUnitXml.fromfile(str(tmp_path / f"{group}.xml")) for case in suite}  # fmt: skip


@pytest.mark.parametrize("require", ["offered", "all"])
def test_junit_counts_every_failure_of_a_group_and_says_what_did_not_run(verify_reports, tmp_path, require):
    """Grouped by kind, a testcase's failure is its first comparison's message and how many more failed; a case
    not run is skipped with why, or under --require all a failure that says it was required."""
    report = copy.deepcopy(verify_reports["spoiled"])
    (run,) = report["runs"]
    run["require"] = require
    run["cases_not_run"] = {"padded_batch": "the test says so"}
    row = next(r for r in run["checkpoints"] if r["name"] == "h0.mlp_fc")
    for i, r in enumerate(row["results"][:3]):
        r.update(ok=False, message=f"h0.mlp_fc: spoiled {i}")
    row = next(r for r in run["checkpoints"] if r["name"] == "h0.attn_out")
    for i, r in enumerate(row["results"][:2]):
        r.update(ok=False, message=f"h0.attn_out: spoiled {i}")
    for name, n in (("h0.ln_2", 3), ("h0.mlp_act", 2), ("h0.ln_1", 1)):  # declared deviations: waived, never a plain pass
        for i, r in enumerate(next(r for r in run["checkpoints"] if r["name"] == name)["results"][:n]):
            r.update(waived=True, message=f"{name}: waived {i}")
    suite = f"gpt2core verify {run['subject']} float64"
    cases = junit_cases(report, tmp_path, "kind")
    assert cases[(suite, "float64", "mlp_fc")] == ("Failure", "h0.mlp_fc: spoiled 0 (and 2 more)")
    assert cases[(suite, "float64", "attn_out")] == ("Failure", "h0.attn_out: spoiled 0 (and 1 more)")
    required = "required (--require all): " if require == "all" else ""
    for kind, said in (("ln_2", "h0.ln_2: waived 0 (and 2 more)"), ("mlp_act", "h0.mlp_act: waived 0 (and 1 more)"), ("ln_1", "h0.ln_1: waived 0")):
        assert cases[(suite, "float64", kind)] == ("Failure" if required else "Skipped", required + said), kind
    (spoiled,) = [r["message"] for r in next(r for r in run["checkpoints"] if r["name"] == "h1.mlp_out")["results"] if not r["ok"]]
    assert cases[(suite, "float64", "mlp_out")] == ("Failure", spoiled)  # one failure: no count
    assert cases[(suite, "float64", "ln_f")] == (None, None)
    said = "case padded_batch NOT RUN (the test says so)"
    assert cases[(suite, "float64", "case padded_batch")] == (("Failure", f"required (--require all): {said}") if require == "all" else ("Skipped", said))


def test_junit_has_a_testcase_per_mode_file_not_read_kind_not_provided_and_the_verdict(verify_reports, tmp_path):
    """Beside the checkpoints: each mode beyond chained (its first failure's message, or 'mode X failed'; NOT RUN
    with why), each file the engine wrote that nothing read, each kind not provided, the logits when no checkpoint
    was compared, and the run's verdict itself with its reasons."""
    report = copy.deepcopy(verify_reports["not_providing"])
    (run,) = report["runs"]
    run["modes"]["generate"] = {"ran": False, "ok": None, "why": "no case records a greedy continuation"}
    run["modes"]["isolated"]["ok"] = False  # no comparison says why: the mode's own line
    run["modes"]["sampled"]["ok"] = False
    run["sampled"][0].update(ok=False, message="sampled: the scores differ")
    row = next(r for r in run["checkpoints"] if r["cached"] is not None)
    run["modes"]["cached"]["ok"], row["cached"] = False, {**row["cached"], "ok": False, "message": "cached: step 3 differs"}
    run["files_not_read"] = ["hello/extra.npy"]
    run.update(verdict="FAIL", reasons=["one", "two"])
    suite = f"gpt2core verify {run['subject']} float64"
    cases = junit_cases(report, tmp_path)
    assert cases[(suite, "float64", "mode isolated")] == ("Failure", "mode isolated failed")
    assert cases[(suite, "float64", "mode cached")] == ("Failure", "cached: step 3 differs")
    assert cases[(suite, "float64", "mode sampled")] == ("Failure", "sampled: the scores differ")
    assert cases[(suite, "float64", "mode generate")] == ("Skipped", "mode generate NOT RUN (no case records a greedy continuation)")
    assert cases[(suite, "float64", "file not read: hello/extra.npy")] == ("Skipped", "the engine wrote hello/extra.npy, which no comparison read")
    assert cases[(suite, "float64", "not provided: attn_probs (h0)")] == ("Skipped", "not provided by the subject: attn_probs (h0)")
    assert cases[(suite, "float64", "verdict")] == ("Failure", "FAIL: one; two")
    assert (suite, "float64", "logits") not in cases  # checkpoints were compared (as float64.<case>): no stand-in for them
    run.update(checkpoints_compared=0, first_divergence={"name": "logits", "case": None, "message": "the logits were compared on no case"})
    assert junit_cases(report, tmp_path)[(suite, "float64", "logits")] == ("Failure", "the logits were compared on no case")
    run["modes"]["generate"] = {"ran": True, "ok": False, "why": None}
    run["generate"][-1].update(ok=False, message="greedy: token 3 differs")
    assert junit_cases(report, tmp_path)[(suite, "float64", "mode generate")] == ("Failure", "greedy: token 3 differs")
    passing = copy.deepcopy(verify_reports["not_providing"])
    assert junit_cases(passing, tmp_path)[(suite, "float64", "verdict")] == (None, None)


@pytest.mark.parametrize("factory", ["spoiled", "not_providing", "refusing_a_case", "refusing_every_case"])
def test_the_text_report_says_each_runs_cases_figures_modes_and_generation(verify_reports, factory):
    """`gpt2core verify`'s text: the headline (verdict, subject, cases run and not), what was compared with the
    largest difference and worst margin, the modes, the table's header, generation, what was not provided, the
    entries left out at padding and the first divergence, each read back and checked against the run."""
    report = verify_reports[factory]
    (run,) = report["runs"]
    lines = format_verify(report).splitlines()
    not_run = "; NOT RUN: " + ", ".join(f"{c} ({why})" for c, why in run["cases_not_run"].items()) if run["cases_not_run"] else ""
    assert lines[0] == f"float64: {run['verdict']} - subject {run['subject']} ({run['precision']} engine); cases run: {', '.join(run['cases_run']) or 'none'}{not_run}"
    compared = re.fullmatch(r"compared (\d+) of (\d+) checkpoints \((\d+) passed\) over (\d+) of (\d+) cases \((\S+) engine; --require (\S+)\)(.*)", lines[1])
    assert compared, lines[1]
    assert [int(x) for x in compared.groups()[:5]] == [run["checkpoints_compared"], run["checkpoints_total"], run["checkpoints_passed"],
                                                         len(run["cases_run"]), len(run["cases"])]  # fmt: skip
    assert compared.groups()[5:7] == (run["precision"], run["require"])
    if run["max_abs_at"]:
        big, worst = run["max_abs_at"], run["worst_margin_at"]
        extremes = re.fullmatch(r"; largest abs diff (\S+) \((\S+), case (\S+)\); worst margin (\S+) \((\S+), case (\S+)\)", compared.group(8))
        assert extremes, compared.group(8)
        figure(extremes.group(1), run["max_abs"], 4), figure(extremes.group(4), run["worst_margin"], 3)
        assert extremes.group(2, 3, 5, 6) == (big["name"], big["case"], worst["name"], worst["case"])
    else:
        assert compared.group(8) == "" and run["checkpoints_compared"] == 0
    modes = ", ".join(f"{mode} {('PASS' if m['ok'] else 'FAIL') if m['ran'] else 'NOT RUN (' + m['why'] + ')'}" for mode, m in run["modes"].items())
    assert lines[3] == f"modes: {modes}"
    shown = [r for r in run["checkpoints"] if r["chained"] is not None or r["provided"]]  # refusing every case: none compared
    assert shown, "every run here lists its provided checkpoints, compared or not"
    header = lines.index("per checkpoint, the case with the largest margin (max abs, max rel, tolerance and margin are that case's):")
    assert lines[header + 1].split() == ["checkpoint", "max", "abs", "max", "rel", "tolerance", "margin", "isolated", "cached", "case"]
    for line, row in zip(lines[header + 2 : header + 2 + len(shown)], shown, strict=True):
        assert line.split()[0] == row["name"], (line, row["name"])
        if row["chained"] is None:
            assert line == f"{row['name']:<16} not compared (no case ran)"
        else:
            assert line.endswith(f"  {row['chained']['case']}" + ("" if row["ok"] else "  <-- FAIL")), line
    for g in run["generate"]:
        assert f"greedy generation, case {g['case']}: {'PASS' if g['ok'] else 'FAIL'} ({g['message']})" in lines
    for g in run["sampled"]:
        s = g["settings"]
        assert (f"sampled generation, case {g['case']} (temperature {s['temperature']}, top_k {s['top_k']}, top_p {s['top_p']}, seed "
                f"{s['seed']}, {s['max_new_tokens']} steps): {'PASS' if g['ok'] else 'FAIL'} ({g['message']})") in lines  # fmt: skip
    said = [line for line in lines if line.startswith("not provided by the subject")]
    assert said == ([f"not provided by the subject (1 of {run['checkpoints_total']}): attn_probs (h0)"] if run["not_provided"] else [])
    entries = [line for line in lines if line.startswith("entries compared: ")]
    assert entries == ([f"entries compared: {run['entries_compared']:,}; at padding positions, not compared: {run['entries_excluded']:,}"]
                       if run["entries_excluded"] else [])  # fmt: skip
    first = [line for line in lines if line.startswith("first divergence")]
    fd = run["first_divergence"]
    where = fd and (f"case {fd['case']}, {fd['mode']}" if fd["case"] else "no case")
    assert first == ([f"first divergence (earliest in forward order over every case and mode): {fd['name']} ({where}): {fd['message']}"] if fd else [])
    assert (factory == "spoiled") == bool(fd and fd["case"]) and (factory == "refusing_every_case") == (where == "no case")


@pytest.mark.parametrize("mode", ["chained", "isolated", "cached"])
def test_a_checkpoints_problem_in_any_mode_is_its_text_row(verify_reports, mode):
    """A comparison that could not be made (a shape, a dtype, NaN) has no figures: its row says FAIL and the problem,
    whichever mode met it, and the rows after it are listed as before."""
    report = copy.deepcopy(verify_reports["not_providing"])
    (run,) = report["runs"]
    rows = [r for r in run["checkpoints"] if r["chained"] is not None]
    row = rows[1]
    cell = row[mode] if row[mode] is not None else dict(row["chained"])
    row[mode] = dict(cell, problem="shape [1, 2, 8] != [1, 2, 4]", ok=False)
    row["ok"] = False
    lines = format_verify(report).splitlines()
    at = lines.index(f"{row['name']:<16} FAIL shape [1, 2, 8] != [1, 2, 4]")
    assert lines[at - 1].split()[0] == rows[0]["name"] and lines[at + 1].split()[0] == rows[2]["name"]


def test_a_waived_checkpoint_says_so_and_why_in_its_text_row(verify_reports):
    report = copy.deepcopy(verify_reports["not_providing"])
    (run,) = report["runs"]
    row = next(r for r in run["checkpoints"] if r["chained"] is not None)
    row["waived"] = "fused attention kernel (declared deviation)"
    (line,) = [line for line in format_verify(report).splitlines() if line.startswith(f"{row['name']:<16} ")]
    assert line.endswith(f"  {row['chained']['case']}  <-- WAIVED (fused attention kernel (declared deviation))"), line


def test_a_failed_generation_says_fail_in_the_text(verify_reports):
    """Greedy and sampled generation that failed: their lines say FAIL and the message (the built-in runs all pass)."""
    report = copy.deepcopy(verify_reports["not_providing"])
    (run,) = report["runs"]
    assert run["generate"] and run["sampled"]
    run["generate"][-1].update(ok=False, message="token 3 differs")
    run["sampled"][-1].update(ok=False, message="step 2: logits differ")
    lines = format_verify(report).splitlines()
    g, s = run["generate"][-1], run["sampled"][-1]
    assert f"greedy generation, case {g['case']}: FAIL (token 3 differs)" in lines
    assert f"sampled generation, case {s['case']} ({format_settings(s['settings'])}): FAIL (step 2: logits differ)" in lines


def test_a_subjects_notes_are_each_a_line_of_the_text(verify_reports):
    report = copy.deepcopy(verify_reports["not_providing"])
    report["runs"][0]["notes"] = ["attn_scores are written unscaled", "logits padded to 64 entries"]
    lines = format_verify(report).splitlines()
    assert [line for line in lines if line.startswith("note")] == ["note: attn_scores are written unscaled",
                                                                   "note: logits padded to 64 entries"]  # fmt: skip


@pytest.mark.parametrize("count, shown", [(8, 8), (9, 8)])
def test_a_reasons_line_shows_eight_and_counts_the_rest(count, shown):
    from gpt2core.report import format_reasons

    reasons = [f"h{i}.ln_1 failed" for i in range(count)]
    lines = format_reasons({"verdict": "FAIL", "reasons": reasons, "left_out": []})
    more = f" (and {count - shown} more)" if count > shown else ""
    assert lines == [f"why FAIL ({count}): " + "; ".join(reasons[:shown]) + more]


def test_a_margin_cell_is_its_figure_a_dash_for_a_mode_not_run_or_inf_without_a_figure():
    from gpt2core.report import _margin

    assert [_margin(None), _margin({"margin": None}), _margin({"margin": 1.23456})] == ["-", "inf", "1.23"]


def test_a_text_report_of_two_dtypes_has_a_section_per_run_and_one_verdict_line(verify_reports):
    """(A test of its own: mutmut maps a test to the functions it reached when first seen.)"""
    report = copy.deepcopy(verify_reports["not_providing"])
    run64 = report["runs"][0]
    report["runs"] = [{**copy.deepcopy(run64), "dtype": "float32"}, run64]
    text = format_verify(report)
    sections = text.split("\n\n")  # a blank line between the runs' tables and before the memory and verdict lines
    assert len(sections) == 3 and [x.split(" - ")[0] for x in sections[:2]] == ["float32: PASS", "float64: PASS"]
    assert sections[2].startswith("memory: ") and sections[2].splitlines()[-1].startswith("verify: PASS")
    last = text.splitlines()[-1]  # the text's verdict line: each run's coverage, "; " between runs
    assert re.fullmatch(r"verify: PASS - float32 compared .+; float64 compared .+", last), last
    assert last.count("; float64 compared ") == 1 and last.count(" float32 compared ") == 1, last


@pytest.mark.parametrize("verdict, colour", [("PASS", "pass"), ("FAIL", "fail"), ("INCOMPLETE", "fail")])
def test_each_verdict_word_has_its_colour_and_an_incomplete_is_never_green(verify_reports, verdict, colour):
    report = copy.deepcopy(verify_reports["not_providing"])
    report["verdict"] = report["runs"][0]["verdict"] = verdict
    page = Page(verify_html(report))
    assert page.headings[0] == f"gpt2core verify: {verdict}" and page.classes[verdict] == colour, page.classes


def test_a_page_of_two_dtypes_has_a_summary_line_and_a_section_per_run(verify_reports):
    report = copy.deepcopy(verify_reports["not_providing"])
    run64 = report["runs"][0]
    report["runs"] = [{**copy.deepcopy(run64), "dtype": "float32"}, run64]
    page = Page(verify_html(report))
    assert page.stray == [], page.stray
    assert [p.split(":")[0] for p in page.paragraphs if p.startswith(("float32: compared", "float64: compared"))] == ["float32", "float64"]
    assert [h for h in page.headings if h.startswith("float")] == ["float32: PASS", "float64: PASS"]

