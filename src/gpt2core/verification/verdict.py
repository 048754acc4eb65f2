"""The verdict: what a verification's outcomes add up to. Nothing else in gpt2core decides PASS.

The rule, for one run (a subject on one reference set):
  FAIL        something that ran failed: a comparison in any mode and case (one within a declared deviation's
              tolerance is waived, not failed), or the next-token distribution outside its budget; or the
              logits were compared on no case (nothing was verified, whatever else ran).
  INCOMPLETE  (require "all" only) nothing failed, but something was left out: a checkpoint the subject does
              not provide, a case it did not run, a mode that did not run, a comparison that passed only as a
              declared deviation (waived), a file the engine wrote that no comparison read.
  PASS        nothing failed, and under require "all" nothing was left out. Under require "offered" (the
              default) what was left out is still listed with the verdict: a PASS says what it did not cover.

Several runs (one per dtype, or an audit's parts) combine to the worst of their verdicts: FAIL over
INCOMPLETE over PASS; no run at all is not a PASS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

REQUIRES = ("offered", "all")  # what --require may say: what the subject offers, or everything
VERDICTS = ("PASS", "INCOMPLETE", "FAIL")  # from best to worst


@dataclass(frozen=True)
class Verdict:
    """A verdict and every reason behind it: `failed` (what failed), `left_out` (what did not run or was
    not compared, whether or not it was required)."""

    verdict: str
    failed: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict == "PASS"

    @property
    def reasons(self) -> tuple[str, ...]:
        """What the verdict rests on: the failures of a FAIL, what was left out of an INCOMPLETE, none for a PASS."""
        return {"FAIL": self.failed, "INCOMPLETE": self.left_out}.get(self.verdict, ())


def judge(
    require: str,
    checkpoints: Sequence[str],
    provided: Sequence[str],
    cases_not_run: Mapping[str, str],
    modes: Mapping[str, Mapping],
    failures: Sequence[Mapping],
    logits_compared: bool,
    distribution_ok: bool | None = None,
    distribution_why: str = "over its budget",
    waived: Sequence[str] = (),
    files_not_read: Sequence[str] = (),
) -> Verdict:
    """The verdict of one run (see the module docstring for the rule).

    require          "offered" or "all"
    checkpoints      every checkpoint name of the reference set; `provided`: those the subject gives
    cases_not_run    case name -> why the subject did not run it
    modes            mode -> {"ran": bool, "why": why it did not run (when it did not)}
    failures         one per failing (mode, case): {"mode", "case", "name", "message"} (named
                     "<name> (<mode>, case <case>): <message>")
    logits_compared  whether the logits were compared on at least one case
    distribution_ok  the next-token distribution within its budget (None: not judged); `distribution_why`
                     says how it was exceeded
    waived           each comparison passed only as a declared deviation, named
    files_not_read   each file the engine wrote that no comparison read
    """
    failed = [f"{f['name']} ({f['mode']}, case {f['case']}): {f['message'].removeprefix(f['name'] + ': ')}" for f in failures]
    if distribution_ok is False:
        failed.append(f"next-token distribution: {distribution_why}")
    if not logits_compared:
        failed.append("the logits were compared on no case: nothing was verified")
    left_out = [f"checkpoint {n} not provided" for n in checkpoints if n not in provided]
    left_out += [f"case {case} not run ({why})" for case, why in cases_not_run.items()]
    left_out += [f"mode {mode} not run ({m['why']})" for mode, m in modes.items() if not m["ran"]]
    left_out += [f"waived: {w}" for w in waived]
    left_out += [f"file not read: {f}" for f in files_not_read]
    return decide(require, failed, left_out)


def decide(require: str, failed: Sequence[str], left_out: Sequence[str]) -> Verdict:
    """FAIL when anything failed; else INCOMPLETE when anything was left out and everything was required
    (require "all"); else PASS. Each reason is a line naming what failed or was left out."""
    if require not in REQUIRES:
        raise ValueError(f"require must be one of {', '.join(REQUIRES)}, got {require!r}")
    verdict = "FAIL" if failed else "INCOMPLETE" if require == "all" and left_out else "PASS"
    return Verdict(verdict, tuple(failed), tuple(left_out))


def combine(verdicts: Sequence[str]) -> str:
    """The verdict of several runs: the worst of theirs. No run is a ValueError, never a PASS."""
    if not verdicts:
        raise ValueError("no verdict to combine: nothing ran")
    unknown = [v for v in verdicts if v not in VERDICTS]
    if unknown:
        raise ValueError(f"unknown verdict {unknown[0]!r}; expected one of {', '.join(VERDICTS)}")
    return max(verdicts, key=VERDICTS.index)
