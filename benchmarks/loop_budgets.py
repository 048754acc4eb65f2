"""The edit-test loop against its budgets (docs/performance.md): each loop timed once, its figure printed beside
its limit. A benchmark, not a test: run it on 2 cores with nothing else running.

    python benchmarks/loop_budgets.py [--only suite,parity,mutmut,ci] [--shared ../shared]

  suite    `pytest -n 2 tests` (GPT2CORE_HYPOTHESIS_PROFILE=ci, as CI)   within 10 min
  parity   `pytest tests/parity`                                          within 3 min
  mutmut   `rm -rf mutants && mutmut run`, then `gpt2core mutation-score --min 0.95`, in a fresh clone
                                                                          within 15 min (and the score passes)
  ci       `CI=true bash .ci/run` in a fresh clone with ../shared beside it
                                                                          within 45 min
Each runs from a fresh `git clone` of this checkout's HEAD (uncommitted changes are not measured) except suite and
parity, which run here. Exit status 1 when any measured loop is over its limit or failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMITS = {"suite": 10 * 60, "parity": 3 * 60, "mutmut": 15 * 60, "ci": 45 * 60}  # seconds: issue 32's budgets


def timed(command: str, cwd: Path, env: dict | None = None) -> tuple[float, int]:
    """(wall seconds, exit status) of a shell command, its output passed through."""
    start = time.monotonic()
    status = subprocess.run(command, shell=True, cwd=cwd, env={**os.environ, **(env or {})}).returncode
    return time.monotonic() - start, status


def fresh_clone(into: Path, shared: Path | None) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(into / "p")], check=True)
    if shared is not None:
        shutil.copytree(shared, into / "shared", symlinks=True)
    return into / "p"


def measure(loop: str, shared: Path | None) -> tuple[float, bool]:
    """(seconds, whether the loop itself passed)."""
    venv_bin = Path(sys.executable).parent
    if loop == "suite":
        seconds, status = timed(f"{venv_bin}/python -m pytest -n 2 -q tests", ROOT, {"GPT2CORE_HYPOTHESIS_PROFILE": "ci"})
        return seconds, status == 0
    if loop == "parity":
        seconds, status = timed(f"{venv_bin}/python -m pytest -q tests/parity", ROOT)
        return seconds, status == 0
    with tempfile.TemporaryDirectory(prefix="gpt2core-loop-") as tmp:
        clone = fresh_clone(Path(tmp), shared)
        if loop == "mutmut":
            seconds, status = timed(f"rm -rf mutants && {venv_bin}/mutmut run", clone)
            _, score = timed(f"{venv_bin}/gpt2core mutation-score --min 0.95", clone)
            return seconds, status == 0 and score == 0
        seconds, status = timed("bash .ci/run", clone, {"CI": "true"})
        return seconds, status == 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(LIMITS), help=f"comma-separated, among {', '.join(LIMITS)}")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="the shared/ directory CI has beside the clone")
    args = p.parse_args(argv)
    loops = args.only.split(",")
    unknown = [x for x in loops if x not in LIMITS]
    if unknown:
        p.error(f"unknown loop {unknown[0]!r}; expected among {', '.join(LIMITS)}")
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load {load:.2f} at the start" + (" (not idle: figures are pessimistic)" if load > 0.5 else ""))
    shared = args.shared if args.shared.is_dir() else None
    rows, ok = [], True
    for loop in loops:
        seconds, passed = measure(loop, shared)
        within = seconds <= LIMITS[loop]
        ok &= within and passed
        rows.append(f"{loop:<7} {seconds / 60:7.1f} min   limit {LIMITS[loop] / 60:4.0f} min   "
                    f"{'within' if within else 'OVER'}{'' if passed else ', and it FAILED'}")  # fmt: skip
        print(rows[-1], flush=True)
    print("\n".join(["", "loop      measured   limit", *rows]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
