"""Text reports of `gpt2core verify`, `faults`, `mutation-score` and `bench`, and the HTML of `gpt2core audit`.

Only layout lives here: every number is computed elsewhere (verify.py, faults.py, mutation.py, bench.py)
and passed in as the report dicts those modules return. setup.cfg keeps mutmut off this module for that
reason; tests/engine checks that the reports show the figures they are given.
"""

from __future__ import annotations


def format_run(run: dict) -> str:
    """A table of every checkpoint: chained max abs/rel difference, tolerance, margin; isolated margin."""
    lines = [
        f"{run['dtype']}: {'PASS' if run['ok'] else 'FAIL'} over cases {', '.join(run['cases'])}; "
        f"max abs diff {run['max_abs']:.3e}, max rel diff {run['max_rel']:.3e}, worst margin {run['worst_margin']:.3g}",
        f"{'checkpoint':<16} {'max abs':>10} {'max rel':>10} {'tolerance':>10} {'margin':>8} {'isolated':>8}  case",
    ]
    for row in run["checkpoints"]:
        ch, iso = row["chained"], row["isolated"]
        if ch["problem"] or iso["problem"]:
            lines.append(f"{row['name']:<16} FAIL {ch['problem'] or iso['problem']}")
            continue
        flag = "" if row["ok"] else "  <-- FAIL"
        lines.append(
            f"{row['name']:<16} {ch['max_abs']:>10.3e} {ch['max_rel']:>10.3e} {ch['tolerance']:>10.3e} "
            f"{ch['margin']:>8.3g} {iso['margin']:>8.3g}  {ch['case']}{flag}"
        )
    if run["first_divergence"]:
        fd = run["first_divergence"]
        lines.append(f"first diverging checkpoint: {fd['name']} (case {fd['case']}): {fd['message']}")
    return "\n".join(lines)


def format_verify(report: dict) -> str:
    """One table per dtype (see `format_run`), then a one-line verdict."""
    tables = [format_run(run) for run in report["runs"]]
    summary = ", ".join(f"{r['dtype']} max abs {r['max_abs']:.3e}" for r in report["runs"])
    return "\n\n".join(tables) + f"\n\nverify: {'PASS' if report['ok'] else 'FAIL'} - {summary}"


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
        f"mutation score {report['score']:.2%} ({report['killed']} killed of {report['total']}; "
        f"{report['survived']} survived, {report['timeout']} timed out, {report['not_checked']} not checked, "
        f"{report['other']} other); minimum {report['minimum']:.0%}: {'PASS' if report['passes'] else 'FAIL'}"
    ]
    lines += [f"  survived {sv['name']}: {sv['reason'] or 'NO REASON GIVEN'}" for sv in report["survivors"]]
    lines += [f"  problem: {problem}" for problem in report["problems"]]
    return "\n".join(lines)


def format_bench(r: dict) -> str:
    """The bench figures side by side, the yardsticks, and which of the targets are met."""
    from .bench import PREFILL_LENGTHS, TARGETS

    mib = 2**20
    lines = [
        f"gpt2core bench: {r['model']} ({r['dtype']}, {r['threads']} threads, {r['blas']}, {r['cpu']})",
        f"numpy {r['numpy']}, torch {r['torch']}, transformers {r['transformers']} "
        f"(attention: {r['attn_implementation_transformers']}); medians of {r['repeats']} runs",
        "",
        f"{'':28}{'gpt2core':>12}{'transformers':>14}{'ratio':>8}",
    ]
    for T in PREFILL_LENGTHS:
        if f"prefill_{T}_s" in r:
            lines.append(f"{f'prefill {T} tokens (s)':28}{r[f'prefill_{T}_s']:12.4f}"
                         f"{r[f'prefill_{T}_s_transformers']:14.4f}{r[f'prefill_{T}_ratio_vs_transformers']:8.2f}")  # fmt: skip
    decode_label = f"decode {r['new_tokens']} tokens (tok/s)"
    lines.append(f"{decode_label:28}{r['decode_tok_s']:12.2f}"
                 f"{r['decode_tok_s_transformers']:14.2f}{r['decode_speedup_vs_transformers']:8.2f}")  # fmt: skip
    lines += [
        f"greedy tokens identical: {r['decode_tokens_match']}",
        "",
        f"weights {r['weight_bytes'] / mib:.1f} MiB, KV cache {r['kv_cache_bytes'] / mib:.1f} MiB; "
        f"one pass over the weight bytes {r['weight_pass_s'] * 1e3:.2f} ms "
        f"({r['weight_bytes'] / r['weight_pass_s'] / 1e9:.1f} GB/s); matmul {r['matmul_gflops']:.1f} GFLOP/s",
        f"decode: {1e3 / r['decode_tok_s']:.2f} ms/token = {r['decode_bandwidth_fraction']:.2f} of the bandwidth limit",
    ]
    for T in PREFILL_LENGTHS:
        if f"prefill_{T}_s" in r:
            lines.append(f"prefill {T}: matmul floor {r[f'prefill_{T}_matmul_floor_s']:.4f} s, "
                         f"gpt2core at {r[f'prefill_{T}_ratio_vs_matmul_floor']:.2f}x the floor")  # fmt: skip
    lines += [
        f"peak RSS {r['peak_rss_bytes'] / mib:.1f} MiB (interpreter before loading {r['baseline_rss_bytes'] / mib:.1f} MiB),"
        f" {r['rss_over_weights_and_cache']:.2f}x weights + KV cache; after decoding {r['rss_after_bytes'] / mib:.1f} MiB",
        "",
        "targets (issue 6):",
    ]
    for key, op, bound, what in TARGETS:
        if key in r:
            met = r[key] >= bound if op == ">=" else r[key] <= bound
            lines.append(f"  {'met    ' if met else 'NOT met'} {key} = {r[key]:.2f} ({what})")
    return "\n".join(lines)
