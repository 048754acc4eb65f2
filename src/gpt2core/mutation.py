"""Reading `mutmut run` results (mutmut 3.x) into a score an auditor can gate on.

mutmut keeps one `mutants/<source path>.meta` JSON file per mutated module, whose `exit_code_by_key` maps
each mutant's name to the exit code of the tests run against it (null: never checked). This module reads
them from one or more run directories (shards of one run, split by mutant-name globs), merges them, and
scores them strictly:
  - killed = the tests failed (exit code 1, or 3 for a pytest internal error, as mutmut counts it);
  - a timeout is NOT a kill (mutmut's own summary counts it as one), a suspicious or never-checked mutant
    is not a kill either, and any of them fails the gate;
  - every survivor needs a one-line reason in the equivalents file (`<mutant name>: <why no behaviour
    changes>`), or the gate fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GPT2CoreError

EQUIVALENTS_FILE = "mutmut-equivalents.txt"
KILLED_CODES = {1, 3}
SURVIVED_CODES = {0}
TIMEOUT_CODES = {36, 24, -24, 152, 255}


class MutationResultsError(GPT2CoreError, ValueError):
    """mutmut's results are missing, malformed, or two shards disagree."""


def status_of(exit_code) -> str:
    if exit_code is None:
        return "not checked"
    if exit_code in KILLED_CODES:
        return "killed"
    if exit_code in SURVIVED_CODES:
        return "survived"
    if exit_code in TIMEOUT_CODES:
        return "timeout"
    return "other"  # no tests (5, 33), skipped (34), suspicious (35), segfault, interrupted: never a kill


def read_run(run_dir) -> dict[str, int | None]:
    """Mutant name -> exit code for every mutant of one run directory (the one holding `mutants/`)."""
    mutants = Path(run_dir) / "mutants"
    metas = sorted(mutants.rglob("*.meta")) if mutants.is_dir() else []
    if not metas:
        raise MutationResultsError(f"no mutmut results in {mutants} (no *.meta files); run `mutmut run` first")
    results: dict[str, int | None] = {}
    for meta in metas:
        try:
            codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            if not isinstance(codes, dict):
                raise TypeError("exit_code_by_key is not an object")
        except (ValueError, KeyError, TypeError) as e:
            raise MutationResultsError(f"{meta}: malformed mutmut results ({type(e).__name__}: {e})") from None
        results.update(codes)
    return results


def merge(runs: list[dict[str, int | None]]) -> dict[str, int | None]:
    """One result per mutant from several shards: a checked result wins over 'not checked'; two shards that
    checked the same mutant must agree."""
    merged: dict[str, int | None] = {}
    for run in runs:
        for name, code in run.items():
            have = merged.get(name)
            if have is not None and code is not None and status_of(have) != status_of(code):
                raise MutationResultsError(f"shards disagree on {name}: exit codes {have} and {code}")
            if have is None:
                merged[name] = code
    return merged


def read_equivalents(path) -> dict[str, str]:
    """`<mutant name>: <reason>` per line; blank lines and lines starting with # are ignored."""
    path = Path(path)
    if not path.is_file():
        return {}
    reasons = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, reason = line.partition(":")
        if not sep or not reason.strip():
            raise MutationResultsError(f"{path}:{n}: expected '<mutant name>: <reason>', got {line!r}")
        reasons[name.strip()] = reason.strip()
    return reasons


@dataclass
class Score:
    counts: dict[str, int]
    total: int
    score: float
    survivors: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def passes(self, minimum: float) -> bool:
        return not self.problems and self.score >= minimum

    def as_dict(self, minimum: float) -> dict:
        return {"killed": self.counts["killed"], "survived": self.counts["survived"],
                "timeout": self.counts["timeout"], "not_checked": self.counts["not checked"],
                "other": self.counts["other"], "total": self.total, "score": self.score, "minimum": minimum,
                "passes": self.passes(minimum), "survivors": self.survivors, "problems": self.problems}  # fmt: skip


def score(results: dict[str, int | None], equivalents: dict[str, str]) -> Score:
    counts = {s: 0 for s in ("killed", "survived", "timeout", "not checked", "other")}
    survivors = []
    for name in sorted(results):
        status = status_of(results[name])
        counts[status] += 1
        if status == "survived":
            survivors.append({"name": name, "reason": equivalents.get(name)})
    total = len(results)
    problems = []
    if total == 0:
        problems.append("no mutant ran")
    for status in ("timeout", "not checked", "other"):
        if counts[status]:
            problems.append(f"{counts[status]} mutant(s) {status}")
    unexplained = [s["name"] for s in survivors if not s["reason"]]
    if unexplained:
        problems.append(f"{len(unexplained)} survivor(s) without a reason in {EQUIVALENTS_FILE}")
    return Score(counts, total, counts["killed"] / total if total else 0.0, survivors, problems)
