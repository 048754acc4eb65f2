"""`gpt2core audit`: parity in both dtypes, the fault catalogue and the last mutation results, in one report.

`run_audit` calls exactly what `gpt2core verify`, `gpt2core faults` and `gpt2core mutation-score` call, so
every number of the report is the number those commands print for the same inputs; `report.audit_html`
lays it out as one self-contained HTML file.
"""

from __future__ import annotations

import datetime
from .mutation import EQUIVALENTS_FILE, MutationResultsError, score_runs
from .verification.faults import catalogue_on
from .verification.verdict import decide
from .verification.verify import verify_model


def mutation_results(run_dirs, equivalents, minimum: float) -> dict:
    """mutation-score's report for the mutmut results in run_dirs, or {"missing": why} when there are none."""
    try:
        return score_runs(run_dirs, equivalents).as_dict(minimum)
    except MutationResultsError as e:
        if "no mutmut results" not in str(e):
            raise  # malformed or disagreeing results are an error, not an absence
        return {"missing": str(e)}


def run_audit(
    model_dir,
    fault_model_dir,
    mutation_dirs=(".",),
    equivalents=EQUIVALENTS_FILE,
    minimum: float = 0.95,
    faults=None,
    with_sensitivity: bool = True,
    command: str | None = None,
) -> dict:
    """{"ok", "verdict", "missing", "created", "command", "verify", "faults", "mutation"}. The verdict is FAIL
    when parity, a fault or the mutation score fails; INCOMPLETE when a part did not run (no mutmut results, or
    anything verify left out: a verification mode the engine does not offer, ...), each named in "missing"; PASS
    only when every part ran and passed (verification.verdict.decide, everything required)."""
    verify = verify_model(model_dir, dtypes=["float32", "float64"], command=command)
    fault_report = catalogue_on(fault_model_dir, names=faults, with_sensitivity=with_sensitivity, command=command)
    mutation = mutation_results(mutation_dirs, equivalents, minimum)
    missing = [f"mutation testing ({mutation['missing']})"] if "missing" in mutation else []
    missing += [f"verify {r['dtype']}: {item}" for r in verify["runs"] for item in r["left_out"]]  # an audit requires all
    failed = [f"verify {r['dtype']}: {reason}" for r in verify["runs"] if r["verdict"] == "FAIL" for reason in r["reasons"]]
    if fault_report["total"] == 0:  # a catalogue that injected nothing proves nothing: never a pass
        missing.append("faults: no fault was run (0 of 0)")
    if fault_report["caught"] != fault_report["total"]:
        failed.append(f"faults: {fault_report['caught']} of {fault_report['total']} caught")
    if not mutation.get("passes", True):
        failed.append("mutation testing: below its minimum score, or survivors not triaged")
    judged = decide("all", failed, missing)
    return {
        "ok": judged.ok,
        "verdict": judged.verdict,
        "reasons": list(judged.reasons),
        "missing": missing,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "verify": verify,
        "faults": fault_report,
        "mutation": mutation,
    }
