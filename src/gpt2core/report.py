"""Text reports of `gpt2core verify`, `faults` and `mutation-score`, and the HTML of `gpt2core verify --html` and
`gpt2core audit` (`gpt2core bench`'s table is bench.py's own).

Every number is computed elsewhere (verify.py, faults.py, mutation.py, bench.py) and passed in as the report
dicts those modules return; what is decided here is what each output says of the verdict (the text's headline
and reasons, JUnit's failed testcases, the HTML headings), so mutmut mutates this module (issue 35) and
tests/engine/test_verdict_outputs.py checks that every output says the same verdict.
"""

from __future__ import annotations

from .growth import error_growth_svg
from .heatmap import margin_heatmaps
from .verification.atomic import atomic_path
from .verification.memory import WEIGHTS_FACTOR


def _margin(cell) -> str:
    """A table cell's margin, or '-' for a mode that did not run."""
    return "-" if cell is None else f"{cell['margin']:.3g}" if cell["margin"] is not None else "inf"


def format_modes(run: dict) -> str:
    """Which modes ran for the subject, and why the others did not: a mode not run is never a pass."""
    parts = []
    for mode, m in run["modes"].items():
        state = ("PASS" if m["ok"] else "FAIL") if m["ran"] else f"NOT RUN ({m['why']})"
        parts.append(f"{mode} {state}")
    return "modes: " + ", ".join(parts)


def format_settings(settings: dict) -> str:
    """'temperature 0.8, top_k 40, top_p 0.9, seed 0, 4 steps'."""
    return (f"temperature {settings['temperature']}, top_k {settings['top_k']}, top_p {settings['top_p']}, "
            f"seed {settings['seed']}, {settings['max_new_tokens']} steps")  # fmt: skip


def format_run(run: dict) -> str:
    """The run's headline (what ran, what did not, the largest difference and the worst margin, each with its
    checkpoint and case), its modes, a table of every compared checkpoint (the case with the largest margin:
    its max abs and rel difference, tolerance and margin; the isolated and cached margins), generation, what
    was not provided (one line per kind), and the first divergence in forward-pass order."""
    not_run = run["cases_not_run"]
    ran = ", ".join(run["cases_run"]) or "none"
    skipped = f"; NOT RUN: {', '.join(f'{c} ({why})' for c, why in not_run.items())}" if not_run else ""
    lines = [f"{run['dtype']}: {run['verdict']} - subject {run['subject']} ({run['precision']} engine); cases run: {ran}{skipped}",
             coverage(run) + extremes(run), format_budgets(run), format_modes(run)] + format_reasons(run)  # fmt: skip
    rows = [r for r in run["checkpoints"] if r["chained"] is not None or r["provided"]]
    if rows:
        lines.append("per checkpoint, the case with the largest margin (max abs, max rel, tolerance and margin are that case's):")
        lines.append(f"{'checkpoint':<16} {'max abs':>10} {'max rel':>10} {'tolerance':>10} {'margin':>8} {'isolated':>8} {'cached':>8}  case")
    for row in rows:
        ch = row["chained"]
        if ch is None:
            lines.append(f"{row['name']:<16} not compared (no case ran)")
            continue
        problems = [c["problem"] for c in (ch, row["isolated"], row["cached"]) if c is not None and c["problem"]]
        if problems:
            lines.append(f"{row['name']:<16} FAIL {problems[0]}")
            continue
        flag = "  <-- FAIL" if not row["ok"] else f"  <-- WAIVED ({row['waived']})" if row["waived"] else ""
        lines.append(
            f"{row['name']:<16} {ch['max_abs']:>10.3e} {ch['max_rel']:>10.3e} {ch['tolerance']:>10.3e} "
            f"{ch['margin']:>8.3g} {_margin(row['isolated']):>8} {_margin(row['cached']):>8}  {ch['case']}{flag}"
        )
    lines += [format_waived(w) for w in run["waived"]]
    if run["distribution"]["positions"]:
        lines.append(format_distribution(run["distribution"]))
    for g in run["generate"]:
        lines.append(f"greedy generation, case {g['case']}: {'PASS' if g['ok'] else 'FAIL'} ({g['message']})")
    for g in run["sampled"]:
        lines.append(f"sampled generation, case {g['case']} ({format_settings(g['settings'])}): "
                     f"{'PASS' if g['ok'] else 'FAIL'} ({g['message']})")  # fmt: skip
    if run["not_provided"]:
        lines.append(f"not provided by the subject ({len(run['not_provided'])} of {run['checkpoints_total']}): "
                     + "; ".join(collapse(run["not_provided"])))  # fmt: skip
    for note in run["notes"]:
        lines.append(f"note: {note}")
    if run["entries_excluded"]:
        lines.append(f"entries compared: {run['entries_compared']:,}; at padding positions, not compared: {run['entries_excluded']:,}")
    if run["first_divergence"]:
        fd = run["first_divergence"]
        where = f"case {fd['case']}, {fd['mode']}" if fd["case"] else "no case"
        lines.append(f"first divergence (earliest in forward order over every case and mode): {fd['name']} ({where}): {fd['message']}")
    return "\n".join(lines)


def format_reasons(run: dict, shown: int = 8) -> list[str]:
    """What the run's verdict rests on, at most `shown` reasons a line: what failed, and what was left out (a
    PASS under --require offered says what it did not cover)."""

    def line(title: str, reasons: list[str]) -> str:
        more = f" (and {len(reasons) - shown} more)" if len(reasons) > shown else ""
        return f"{title} ({len(reasons)}): " + "; ".join(reasons[:shown]) + more

    lines = [line("why FAIL", run["reasons"])] if run["verdict"] == "FAIL" else []
    if run["left_out"]:
        required = run["verdict"] == "INCOMPLETE"
        lines.append(line("why INCOMPLETE" if required else f"left out (not required by --require {run['require']})", run["left_out"]))
    return lines


def format_budgets(run: dict) -> str:
    """What each checkpoint was held to: the class's measured budgets, or its fixed tolerance."""
    b = run["budgets"]
    if not b["calibrated"]:
        return f"tolerance: {b['floor']:.0e} x max|ref| per checkpoint ({run['precision']}: fixed, there is no more exact transformers)"
    return (f"budgets ({run['precision']}: {b['class']}): {b['factor']:g} x the honest implementation's error on each checkpoint "
            f"and case against transformers in float64, never below {b['floor']:.1e} x max|ref| (the tolerance column)")  # fmt: skip


def format_budget_table(entry: dict) -> str:
    """A precision class's budgets on a reference set, per checkpoint kind: the honest implementation's worst
    error relative to max|ref| and the budget it gives."""
    lines = [f"{entry['references']} {entry['precision']}: budgets stored in {entry['path']}",
             f"  {'kind':<12} {'honest rel':>10} {'budget rel':>10}"]  # fmt: skip
    lines += [f"  {kind:<12} {k['honest_rel']:>10.2e} {k['budget_rel']:>10.2e}" for kind, k in entry["kinds"].items()]
    return "\n".join(lines)


def format_waived(w: dict) -> str:
    """One waived comparison: never a plain PASS."""
    return (f"WAIVED {w['name']} (case {w['case']}, {w['mode']}): max rel diff {w['max_rel']:.3e} within the declared "
            f"{w['declared']:.3e}, margin {w['margin']:.3g} against its budget {w['tolerance']:.3e}: {w['reason']}")


def format_distribution(d: dict) -> str:
    """The next-token distribution at the logits, with the budgets KL is held to."""
    b = d["budget"]
    held = (lambda k: f" (budget {b[k]:.3e})") if b else (lambda k: "")
    honest = f"; the honest implementation's: KL max {b['honest']['kl_max']:.3e}, top-1 {b['honest']['top1_agreement']:.4f}" if b else ""
    verdict = f"WAIVED ({d['waived']})" if d.get("waived") else {True: "PASS", False: "FAIL", None: "not judged"}[d["ok"]]
    return (f"next-token distribution over {d['positions']} positions: {verdict}: KL mean {d['kl_mean']:.3e} nats{held('kl_mean')}, "
            f"max {d['kl_max']:.3e}{held('kl_max')}; top-1 agreement {d['top1_agreement']:.4f}; the reference's top token "
            f"at p {d['p_top_mean']:.4g} (reference {d['p_top_ref_mean']:.4g}); perplexity ratio {d['perplexity_ratio']:.6f}{honest}")  # fmt: skip


def collapse(names: list[str]) -> list[str]:
    """Checkpoint names grouped by kind: ['embeddings', 'h0.q', 'h1.q', 'h3.q'] -> ['embeddings', 'q (h0-h1, h3)']."""
    layers: dict[str, list[int]] = {}
    out = []
    for name in names:
        head, _, kind = name.partition(".")
        if kind and head[1:].isdigit():
            if kind not in layers:
                out.append(kind)
            layers.setdefault(kind, []).append(int(head[1:]))
        else:
            out.append(name)
    return [f"{item} ({spans(layers[item])})" if item in layers else item for item in out]


def spans(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> 'h0-h2, h5'."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(f"h{start}" if start == n else f"h{start}-h{n}")
            start = None
    return ", ".join(parts)


def coverage(run: dict) -> str:
    """'compared N of M checkpoints (P passed) over K of L cases' with the precision and what is required: what
    ran, never called verified."""
    waived = f", {run['checkpoints_waived']} of them WAIVED" if run["checkpoints_waived"] else ""
    return (f"compared {run['checkpoints_compared']} of {run['checkpoints_total']} checkpoints ({run['checkpoints_passed']} "
            f"passed{waived}) over {len(run['cases_run'])} of {len(run['cases'])} cases ({run['precision']} engine; --require {run['require']})")  # fmt: skip


def extremes(run: dict) -> str:
    """'; largest abs diff X (checkpoint, case C); worst margin Y (checkpoint, case C)', or nothing when nothing was compared."""
    if not run["max_abs_at"]:
        return ""
    big, worst = run["max_abs_at"], run["worst_margin_at"]
    return (f"; largest abs diff {run['max_abs']:.3e} ({big['name']}, case {big['case']}); "
            f"worst margin {run['worst_margin']:.3g} ({worst['name']}, case {worst['case']})")


def format_verify(report: dict) -> str:
    """One table per dtype (see `format_run`), then a one-line verdict."""
    tables = [format_run(run) for run in report["runs"]]
    summary = "; ".join(f"{r['dtype']} {coverage(r)}{extremes(r)}" for r in report["runs"])
    memory = f"{format_memory(report['memory'])}\n" if "memory" in report else ""
    return "\n\n".join(tables) + f"\n\n{memory}verify: {report['verdict']} - {summary}"


def format_memory(m: dict) -> str:
    """The run's peak memory in one line; against its bound only where the bound applies (gpt2core's own engine,
    on weights of at least 1 GiB: below that the run's fixed costs, a few hundred MB, outweigh the weights)."""
    gb = 1e9
    child = (f"; the engine's command peaked at {m['children_peak_rss_bytes'] / gb:.2f} GB"
             if m["children_peak_rss_bytes"] and not m["own_engine"] else "")
    line = (f"memory: peak {m['peak_rss_bytes'] / gb:.2f} GB, {m['peak_over_baseline_bytes'] / gb:.2f} GB above the "
            f"{m['baseline_rss_bytes'] / gb:.2f} GB held before the run")  # fmt: skip
    if not m["bound_applies"]:
        why = ("the bound is for gpt2core's own engine" if not m["own_engine"] else
               "no bound on weights under 1 GiB: the run's fixed costs outweigh them")  # fmt: skip
        return f"{line} ({why}){child}"
    verdict = "within" if m["within_bound"] else "OVER"
    return (f"{line}; bound {m['bound_bytes'] / gb:.2f} GB ({WEIGHTS_FACTOR} x {m['weights_bytes'] / gb:.2f} GB of weights + "
            f"{m['case_references_bytes'] / gb:.2f} GB of one case's references): {verdict}{child}")  # fmt: skip


def write_junit(report: dict, path, group: str = "checkpoint") -> None:
    """JUnit XML of a verify report, one testsuite per dtype, for GitHub, GitLab or Jenkins.

    group "checkpoint": a testcase per case and provided checkpoint (chained mode); "kind": one per checkpoint kind
    (ln_1, attn_probs, ...: every layer and case); "case": one per case (every checkpoint). Then one testcase per
    other mode (isolated, cached, generate, sampled), one per case not run and one per kind not provided. What did
    not run or is not provided is skipped, or, under --require all, a failure: a CI that reads JUnit alone sees
    exactly the verdict (PASS: no failure and no error)."""
    from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

    if group not in ("checkpoint", "kind", "case"):
        raise ValueError(f"JUnit group {group!r}; expected checkpoint, kind or case")
    xml = JUnitXml("gpt2core verify")
    for run in report["runs"]:
        suite = TestSuite(f"gpt2core verify {run['subject']} {run['dtype']}")
        strict = run["require"] == "all"

        def missing(name, classname, why):
            test = TestCase(name, classname=classname)
            test.result = [Failure(f"required (--require all): {why}") if strict else Skipped(why)]
            suite.add_testcase(test)

        results = {}  # (group key) -> [messages of failures], in the order first seen
        for row in run["checkpoints"]:
            if not row["provided"]:
                continue
            for r in row["results"]:
                key = {"checkpoint": (f"{run['dtype']}.{r['case']}", row["name"]),
                       "kind": (run["dtype"], row["name"].split(".")[-1]), "case": (run["dtype"], r["case"])}[group]  # fmt: skip
                results.setdefault(key, ([], []))
                if not r["ok"]:
                    results[key][0].append(r["message"])
                elif r["waived"]:
                    results[key][1].append(r["message"])
        for (classname, name), (bad, waived) in results.items():
            test = TestCase(name, classname=classname)
            if bad:
                test.result = [Failure(bad[0] + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))]
            elif waived:  # a declared deviation: skipped, never a plain pass; a failure under --require all
                why = waived[0] + (f" (and {len(waived) - 1} more)" if len(waived) > 1 else "")
                test.result = [Failure(f"required (--require all): {why}") if strict else Skipped(why)]
            suite.add_testcase(test)
        for mode, m in run["modes"].items():
            if mode == "chained":
                continue
            if not m["ran"]:
                missing(f"mode {mode}", run["dtype"], f"mode {mode} NOT RUN ({m['why']})")
                continue
            test = TestCase(f"mode {mode}", classname=run["dtype"])
            if not m["ok"]:
                bad = [g["message"] for g in run[mode] if not g["ok"]] if mode in ("generate", "sampled") else []
                rows = [r[mode]["message"] for r in run["checkpoints"] if r.get(mode) and not r[mode]["ok"]]
                test.result = [Failure((bad + rows + [f"mode {mode} failed"])[0])]
            suite.add_testcase(test)
        for case, why in run["cases_not_run"].items():
            missing(f"case {case}", run["dtype"], f"case {case} NOT RUN ({why})")
        for kind in collapse(run["not_provided"]):
            missing(f"not provided: {kind}", run["dtype"], f"not provided by the subject: {kind}")
        for file in run["files_not_read"]:
            missing(f"file not read: {file}", run["dtype"], f"the engine wrote {file}, which no comparison read")
        if run["first_divergence"] and not run["checkpoints_compared"]:
            test = TestCase("logits", classname=run["dtype"])
            test.result = [Failure(run["first_divergence"]["message"])]
            suite.add_testcase(test)
        verdict = TestCase("verdict", classname=run["dtype"])  # the run's verdict itself: JUnit never says less
        if run["verdict"] != "PASS":
            verdict.result = [Failure(f"{run['verdict']}: " + "; ".join(run["reasons"]))]
        suite.add_testcase(verdict)
        xml.add_testsuite(suite)
    with atomic_path(path) as tmp:
        xml.write(str(tmp), pretty=True)


def format_faults(report: dict) -> str:
    """The fault table (caught, where, margin, by which comparisons) and the sensitivity scan."""
    lines = [
        f"fault catalogue on {report['model']}: {report['caught']} of {report['total']} caught",
        f"{'fault':<30} {'caught':<7} {'first diverging':<16} {'margin':>9}  caught by",
    ]
    for f in report["faults"]:
        margin = "-" if f["margin"] is None else f"{f['margin']:.3g}"
        why = f" ({f['problem']})" if f["problem"] else ""
        lines.append(f"{f['name']:<30} {'yes' if f['caught'] else 'NO':<7} {f['checkpoint'] or '-':<16} {margin:>9}  "
                     f"{', '.join(f['caught_by']) or '-'}{why}")  # fmt: skip
    for dtype, tensors in report.get("sensitivity", {}).items():
        lines.append(f"smallest detected relative weight perturbation, {dtype}: "
                     + ", ".join(f"{t} {d:.0e}" if d else f"{t} none" for t, d in tensors.items()))  # fmt: skip
    return "\n".join(lines)


def format_mutation_score(report: dict) -> str:
    """The score line, each survivor with its triage reason, and every problem that fails the gate."""
    lines = [
        f"mutation score {report['score']:.2%} ({report['killed']} killed of {report['total']}, "
        f"{report['killed_by_type_check']} of them by the type checker; "
        f"{report['survived']} survived, {report['timeout']} timed out, {report['not_checked']} not checked, "
        f"{report['other']} other); minimum {report['minimum']:.0%}: {'PASS' if report['passes'] else 'FAIL'}"
    ]
    lines += [f"  survived {sv['name']}: {sv['reason'] or 'NO REASON GIVEN'}" for sv in report["survivors"]]
    lines += [f"  problem: {problem}" for problem in report["problems"]]
    return "\n".join(lines)


# --- gpt2core audit: one self-contained HTML file ----------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}.fail{color:#b00;font-weight:bold}.pass{color:#070;font-weight:bold}
code{font-size:90%}svg{margin:.5em 0}.maps{display:flex;flex-wrap:wrap;gap:16px}"""


def _num(x, fmt=".3e") -> str:
    return "-" if x is None else format(x, fmt)


def _verdict(ok: bool) -> str:
    return '<span class="pass">PASS</span>' if ok else '<span class="fail">FAIL</span>'


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """An HTML table; the first `left` columns are left-aligned; cells are already escaped HTML."""
    cls = lambda i: ' class="l"' if i < left else ""  # noqa: E731
    head = "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# What the parity section's columns mean: prose, kept outside the function so that mutmut (which mutates function
# bodies) does not turn its wording into mutants that change no figure and no verdict.
PARITY_TERMS = ("Chained: the engine runs from the token ids; isolated: each stage is fed the reference's own input. "
                "Margin = max|diff| / tolerance (&lt; 1 passes); tolerance = the checkpoint's budget on that case "
                "(below each run: how it was measured).")


def _parity_section(verify: dict) -> str:
    from html import escape

    out = [f"<h2>Parity with transformers: {_verdict_word(verify['verdict'])}</h2>",
           f"<p>Model <code>{escape(verify['model'])}</code>. {PARITY_TERMS}</p>"]
    for run in verify["runs"]:
        fd = run["first_divergence"]
        out.append(f"<h3>{run['dtype']}: {_verdict_word(run['verdict'])}</h3><p>cases: {escape(', '.join(run['cases']))}; "
                   f"max abs diff {run['max_abs']:.3e}, max rel diff {run['max_rel']:.3e}, worst margin "
                   f"{run['worst_margin']:.3g}" + (f"; first diverging checkpoint {escape(fd['name'])} "
                   f"(case {escape(str(fd['case']))}): {escape(fd['message'])}" if fd else "") + "</p>")  # fmt: skip
        out += [f"<p>{escape(line)}</p>" for line in format_reasons(run)]
        out.append(f"<p>{escape(format_budgets(run))}</p>")
        out.append(error_growth_svg(run))
        out.append(margin_heatmaps(run))
        out.append(f"<p>{escape(format_modes(run))}</p>")
        rows = []
        for row in run["checkpoints"]:
            ch = row["chained"]
            if ch is None:  # nothing to show but why
                why = "not compared (no case ran)" if row["provided"] else "not provided by the subject"
                rows.append([escape(row["name"]), *["-"] * 7, f'<span class="fail">{why}</span>'])
                continue
            problems = [c["problem"] for c in (ch, row["isolated"], row["cached"]) if c is not None and c["problem"]]
            rows.append([escape(row["name"]), _num(ch["max_abs"]), _num(ch["max_rel"]), _num(ch["tolerance"]),
                         _num(ch["margin"], ".3g"), _margin(row["isolated"]), _margin(row["cached"]), escape(ch["case"]),
                         _verdict(row["ok"]) + (f" {escape(problems[0])}" if problems else "")])  # fmt: skip
        out.append(_table(["checkpoint", "max abs", "max rel", "tolerance", "margin", "isolated margin", "cached margin",
                           "worst case", ""], rows))  # fmt: skip
        for g in run["sampled"]:
            out.append(f"<p>Sampled generation, case {escape(g['case'])} ({escape(format_settings(g['settings']))}): "
                       f"{_verdict(g['ok'])} {escape(g['message'])}</p>")  # fmt: skip
            out.append(_table(["step", "max abs", "tolerance", "margin", "undecided tokens", ""],
                              [[escape(c["name"]), _num(c["max_abs"]), _num(c["tolerance"]), _num(c["margin"], ".3g"),
                                str(c["worst"].get("undecided_tokens", "-")),
                                _verdict(c["ok"]) + (f" {escape(c['problem'])}" if c["problem"] else "")] for c in g["steps"]]))  # fmt: skip
    return "".join(out)


def _faults_section(faults: dict) -> str:
    from html import escape

    rows = [[escape(f["name"]), escape(f["description"]), "yes" if f["caught"] else '<span class="fail">NO</span>',
             escape(f["expected_checkpoint"]), escape(f["checkpoint"] or "-"), _num(f["margin"], ".3g"),
             escape(f["problem"] or ""), escape(", ".join(f["caught_by"])), escape(", ".join(f["property_modules"]))]
            for f in faults["faults"]]  # fmt: skip
    out = [f"<h2>Fault catalogue: {faults['caught']} of {faults['total']} caught</h2>",
           f"<p>Model <code>{escape(faults['model'])}</code> (float64 references). A fault is caught when the first "
           "diverging checkpoint is the one named, with a margin &gt; 1 or a named problem.</p>",  # pragma: no mutate (prose)
           _table(["fault", "description", "caught", "expected at", "first diverging", "margin", "problem",
                   "caught by", "property modules that fail alone"], rows, left=2)]  # fmt: skip
    if faults.get("sensitivity"):
        sens = faults["sensitivity"]
        tensors = list(next(iter(sens.values())))
        out.append("<h3>Sensitivity: smallest relative weight perturbation detected</h3>")
        out.append(_table(["dtype", *map(escape, tensors)], [[d, *(_num(v[t], ".0e") for t in tensors)] for d, v in sens.items()]))
    return "".join(out)


def _mutation_section(mutation: dict) -> str:
    from html import escape

    if "missing" in mutation:
        return f"<h2>Mutation testing: no results</h2><p>{escape(mutation['missing'])}</p>"
    rows = [[escape(s["name"]), escape(s["reason"] or "NO REASON GIVEN")] for s in mutation["survivors"]]
    return "".join([
        f"<h2>Mutation testing: {mutation['score']:.2%} {_verdict(mutation['passes'])}</h2>",
        f"<p>{mutation['killed']} killed of {mutation['total']}, {mutation['killed_by_type_check']} of them by the type "
        f"checker; {mutation['survived']} survived, {mutation['timeout']} "
        f"timed out, {mutation['not_checked']} not checked, {mutation['other']} other; minimum {mutation['minimum']:.0%}. "
        "A timeout is not a kill.</p>",
        "".join(f'<p class="fail">{escape(p)}</p>' for p in mutation["problems"]),
        _table(["surviving mutant", "why it is equivalent"], rows, left=2) if rows else "",
    ])  # fmt: skip


def _verdict_word(verdict: str) -> str:
    """PASS, FAIL or INCOMPLETE as the page shows it (an INCOMPLETE never green)."""
    return {"PASS": _verdict(True), "FAIL": _verdict(False)}.get(verdict, '<span class="fail">INCOMPLETE</span>')


def verify_html(report: dict) -> str:
    """`gpt2core verify --html`: the verify report as one HTML page with no external resources (the audit
    page's parity section: per run, the error-growth plot, the margin heatmaps and the checkpoint table)."""
    from html import escape

    return "".join([
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gpt2core verify</title><style>{CSS}</style></head><body>",
        f"<h1>gpt2core verify: {_verdict_word(report['verdict'])}</h1>",
        "".join(f"<p>{escape(run['dtype'])}: {escape(coverage(run) + extremes(run))}</p>" for run in report["runs"]),
        _parity_section(report), "</body></html>",
    ])  # fmt: skip


def audit_html(audit: dict) -> str:
    """The whole audit as one HTML page with no external resources."""
    from html import escape

    verify, faults = audit["verify"], audit["faults"]
    hashes = [[escape(verify["model"]), escape(f), h] for f, h in verify["weights_sha256"].items()]
    hashes += [[escape(faults["model"]), escape(f), h] for f, h in faults["weights_sha256"].items()]
    versions = [[escape(k), escape(str(v))] for k, v in verify["versions"].items()]
    return "".join([
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gpt2core audit</title><style>{CSS}</style></head><body>",
        f"<h1>gpt2core audit: {_verdict_word(audit['verdict'])}</h1>",
        "".join(f'<p class="fail">Not run: {escape(m)}</p>' for m in audit["missing"]),
        f"<p>Created {escape(audit['created'])} by <code>{escape(audit['command'] or '')}</code>.</p>",
        _parity_section(verify), _faults_section(faults), _mutation_section(audit["mutation"]),
        "<h2>Weights and versions</h2>", _table(["model", "file", "sha256"], hashes, left=3),
        _table(["package", "version"], versions, left=2), "</body></html>",
    ])  # fmt: skip
