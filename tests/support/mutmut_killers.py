"""The tests that killed each function's mutants, kept between mutmut runs.

During a run, `tests/conftest.py` records the test that failed for each killed mutant (mutants/.mutmut-killers/,
one file per function) and runs those first for the function's next mutants. The record goes with `rm -rf
mutants`; `mutmut-killers.txt` at the repository root keeps it, so that a run from scratch tries each function's
known killers first instead of finding them again behind every cheaper test. Only the order of a mutant's tests
depends on it: a stale line costs time, never a verdict (every test that reaches a surviving mutant still runs).

    python tests/support/mutmut_killers.py   # after a run, in the repository root: refreshes mutmut-killers.txt
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

SEED = "mutmut-killers.txt"
RECORD = ".mutmut-killers"  # in mutants/, mutmut's working directory
# Every distinct killer of a function is kept, most frequent first. Measured on the run of 2026-12-04 (7,214 kills
# over 220 functions): 897 kills (12%) fell to a test outside their function's four most frequent killers, and such a
# mutant runs every cheaper test of the selection before its killer (up to 245 s on verify_references); all 761
# (function, killer) pairs cost 215 lines more than four per function, and a listed test that does not kill a
# mutant costs its own seconds, not the selection's.


def read_seed(path: Path) -> dict[str, list[str]]:
    """Function -> its killers, most frequent first, from a seed file ({} when there is none). Lines are
    `function test-node-id`; `#` starts a comment."""
    seed: dict[str, list[str]] = {}
    if not path.is_file():
        return seed
    for line in path.read_text(encoding="utf-8").splitlines():
        function, _, nodeid = line.partition(" ")
        if function and not function.startswith("#") and nodeid:
            seed.setdefault(function, []).append(nodeid)
    return seed


def read_record(directory: Path) -> dict[str, list[str]]:
    """Function -> every test that killed one of its mutants in the run that wrote `directory`, one per kill."""
    return {f.name.removesuffix(".txt"): f.read_text(encoding="utf-8").splitlines() for f in sorted(directory.glob("*.txt"))}


def refreshed(seed: dict[str, list[str]], record: dict[str, list[str]]) -> dict[str, list[str]]:
    """The seed with each function the run recorded replaced by all of its killers, most frequent first (ties: the
    earlier first); functions the run did not reach keep their lines."""
    fresh = {function: [nodeid for nodeid, _ in Counter(kills).most_common()] for function, kills in record.items() if kills}
    return dict(sorted({**seed, **fresh}.items()))


def priority(kills: list[str], seeded: list[str]) -> dict[str, int]:
    """Test node id -> its rank among a function's known killers, first tried first: this run's kills, the latest
    first (`kills` in the order they happened), then the seeded ones in their order."""
    return {nodeid: rank for rank, nodeid in enumerate(dict.fromkeys([*reversed(kills), *seeded]))}


# After a function's known killers, the tests that took under CHEAP_SECONDS in mutmut's stats run, then the rest;
# within each, module by module, cheapest module first (mean seconds per test), so that each module's fixtures are
# set up once. Measured on the run of 2026-12-04: a module's mean hides its one-function tests behind its slow ones
# (test_precision.py's 19 malformed-deviation cases, 0.001 s each, behind its 3-4 s verifications), and the first
# mutants of `parse_deviations` then took 130-143 s to reach them; with its 110 tests under 0.05 s tried first, the
# next 75 took 0.42 s (median) each.
CHEAP_SECONDS = 0.05


def module_means(test_seconds: dict[str, float]) -> dict[str, float]:
    """Test module path -> mean seconds per test, from node id -> seconds."""
    totals: dict[str, list] = {}
    for nodeid, seconds in test_seconds.items():
        total = totals.setdefault(nodeid.split("::")[0], [0.0, 0])
        total[0] += seconds
        total[1] += 1
    return {path: seconds / count for path, (seconds, count) in totals.items()}


def run_order(tests: list[tuple[str, str, int | None]], first: dict[str, int], test_seconds: dict[str, float],
              module_seconds: dict[str, float], last: str) -> dict[str, int]:
    """(node id, module path, line) of a mutant's tests -> each node id's place in the run: `first`'s ranks (known
    killers), then tests under CHEAP_SECONDS, then the rest; within each, modules by mean seconds per test (modules
    with no figure after them, the module `last` at the end), then by path and line; ties keep their order."""
    inf = float("inf")

    def key(index):
        nodeid, path, line = tests[index]
        cheap = path != last and test_seconds.get(nodeid, inf) < CHEAP_SECONDS
        return first.get(nodeid, len(first)), not cheap, path == last, module_seconds.get(path, inf), path, line or 0, index

    return {tests[index][0]: place for place, index in enumerate(sorted(range(len(tests)), key=key))}


def write_seed(path: Path, seed: dict[str, list[str]]) -> None:
    header = "# mutmut: the tests that killed each function's mutants, tried first (tests/support/mutmut_killers.py)\n"
    path.write_text(header + "".join(f"{function} {nodeid}\n" for function, nodeids in seed.items() for nodeid in nodeids), encoding="utf-8")


def main(root: Path = Path(".")) -> int:
    record = root / "mutants" / RECORD
    if not record.is_dir():
        print(f"no {record}: run mutmut first", file=sys.stderr)
        return 1
    seed = refreshed(read_seed(root / SEED), read_record(record))
    write_seed(root / SEED, seed)
    print(f"{root / SEED}: {len(seed)} functions, {sum(map(len, seed.values()))} killers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
