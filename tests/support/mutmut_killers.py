"""The tests that killed each mutant, kept between mutmut runs, and the order a mutant's tests run in.

During a run, `tests/conftest.py` records the test that failed for each killed mutant (mutants/.mutmut-killers/,
one file per function, a line `number test-node-id` per kill) and runs, for each mutant, first the tests that killed
that very mutant before, then those that killed the function's other mutants. The record goes with `rm -rf mutants`;
`mutmut-killers.txt` at the repository root keeps it, so that a run from scratch tries each mutant's own killer
first instead of finding it again behind every cheaper test. Only the order of a mutant's tests depends on it: a
stale line (a function whose code changed renumbers its mutants) costs time, never a verdict (every test that reaches
a surviving mutant still runs).

    python tests/support/mutmut_killers.py   # after a run, in the repository root: refreshes mutmut-killers.txt

The seed file's lines are `function test-node-id`, then a tab and the numbers of the function's mutants that test
killed (`gpt2core.engine.ops.x_gelu tests/property/test_ops.py::test_gelu_matches_torch<TAB>1,2,5`); pytest escapes
a tab in a node id, so the tab is unambiguous. `#` starts a comment.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from pathlib import Path

SEED = "mutmut-killers.txt"
RECORD = ".mutmut-killers"  # in mutants/, mutmut's working directory
STATS = "mutmut-stats.json"  # mutmut's, in mutants/
# Every distinct killer of a function is kept, most frequent first. Measured on the run of 2026-12-04 (7,214 kills
# over 220 functions): 897 kills (12%) fell to a test outside their function's four most frequent killers, and such a
# mutant runs every cheaper test of the selection before its killer (up to 245 s on verify_references); all 761
# (function, killer) pairs cost 215 lines more than four per function, and a listed test that does not kill a
# mutant costs its own seconds, not the selection's.
# Each killer also keeps the numbers of the mutants it killed. Measured on the mutants/ of 2026-12-05: 117 of
# verify_references' 693 mutants took over 10 s (11,882 of its 13,755 child-seconds, up to 1,399 s) running the
# function's other killers and cheaper tests before their own; a mutant whose own killer runs first costs one test.

Seed = dict[str, dict[str, list[int]]]  # function -> killer node id (most frequent first) -> numbers of its kills
Kill = tuple[int | None, str]  # (the mutant's number, or None in a record written before numbers; the killer's node id)


def mutant_of(name: str) -> tuple[str | None, int | None]:
    """mutmut's MUTANT_UNDER_TEST ('gpt2core.engine.ops.x_gelu__mutmut_3') -> (function, number); (None, None)
    for anything else ('stats', 'fail', '')."""
    function, sep, number = name.rpartition("__mutmut_")
    return (function, int(number)) if sep and function and number.isdigit() else (None, None)


def read_seed(path: Path) -> Seed:
    """The seed file's killers ({} when there is none); lines without numbers (older files) have none."""
    seed: Seed = {}
    if not path.is_file():
        return seed
    for line in path.read_text(encoding="utf-8").splitlines():
        function, _, rest = line.partition(" ")
        nodeid, _, numbers = rest.partition("\t")
        if function and not function.startswith("#") and nodeid:
            seed.setdefault(function, {})[nodeid] = [int(n) for n in numbers.split(",") if n.isdigit()]
    return seed


def read_kills(path: Path) -> list[Kill]:
    """One function's record, in the order of its kills ([] when there is none)."""
    if not path.is_file():
        return []
    kills: list[Kill] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        number, _, nodeid = line.partition(" ")
        kills.append((int(number), nodeid) if number.isdigit() and nodeid else (None, line))
    return kills


def record_line(number: int, nodeid: str) -> str:
    return f"{number} {nodeid}\n"


def read_record(directory: Path) -> dict[str, list[Kill]]:
    """Function -> every kill the run that wrote `directory` recorded."""
    return {f.name.removesuffix(".txt"): read_kills(f) for f in sorted(directory.glob("*.txt"))}


def refreshed(seed: Seed, record: dict[str, list[Kill]]) -> Seed:
    """The seed with each function the run recorded replaced by all of its killers, most frequent first (ties: the
    earlier first), each with the numbers of the mutants it killed; then the seeded killers of that function's mutants
    the run killed none of (a run cut short, or by name), with those numbers only. Functions the run did not reach
    keep their lines."""
    fresh: Seed = {}
    for function, kills in record.items():
        if not kills:
            continue
        numbers: dict[str, set[int]] = {}
        for number, nodeid in kills:
            numbers.setdefault(nodeid, set()).update([] if number is None else [number])
        reached = {number for number, _ in kills}
        for nodeid, seeded in seed.get(function, {}).items():
            unreached = {number for number in seeded if number not in reached}
            if unreached:
                numbers.setdefault(nodeid, set()).update(unreached)
        order = [nodeid for nodeid, _ in Counter(killer for _, killer in kills).most_common()]
        fresh[function] = {nodeid: sorted(numbers[nodeid]) for nodeid in dict.fromkeys([*order, *numbers])}
    return dict(sorted({**seed, **fresh}.items()))


def own_killers(kills: list[Kill], seeded: dict[str, list[int]], number: int | None) -> list[str]:
    """The tests that killed this very mutant, first tried first: this run's record, the latest first, then the
    seed's, in its order (repeats left in)."""
    own = [nodeid for n, nodeid in reversed(kills) if number is not None and n == number]
    return own + [nodeid for nodeid, numbers in seeded.items() if number in numbers]


def priority(kills: list[Kill], seeded: dict[str, list[int]], number: int | None) -> dict[str, int]:
    """Test node id -> its rank among a mutant's known killers, first tried first: the tests that killed this very
    mutant (own_killers), then this run's kills of the function, the latest first (`kills` in the order they
    happened), then the function's seeded killers in their order."""
    own = own_killers(kills, seeded, number)
    return {nodeid: rank for rank, nodeid in enumerate(dict.fromkeys([*own, *(nodeid for _, nodeid in reversed(kills)), *seeded]))}


# mutmut runs each mutant in a pytest session of its own, forked from its main process, and pytest imports
# tests/conftest.py afresh in every session; this module is imported once and stays, so what it caches here is read
# once, in mutmut's main process, and shared by every child forked after (the stats file: 2.7 MB of JSON, 17 ms a
# child). Each cache is keyed by the file's size and modification time: mutmut writes its stats after the first reads.


def read_once_per_version(read):
    """`read(path)` made to read each version of a file (its size and modification time) once and keep what it
    read; {} where there is no file."""

    @functools.cache
    def cached(stamp: tuple[str, int, int] | None):
        return read(Path(stamp[0])) if stamp else {}

    def once(path: Path):
        try:
            stat = path.stat()
        except OSError:
            return cached(None)
        return cached((str(path.resolve()), stat.st_mtime_ns, stat.st_size))

    return functools.wraps(read)(once)


@read_once_per_version
def stats_seconds(path: Path) -> dict[str, float]:
    """Test node id -> seconds in mutmut's stats run ({} where the stats file is unreadable)."""
    try:
        return dict(json.loads(path.read_text())["duration_by_test"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@read_once_per_version
def module_seconds(path: Path) -> dict[str, float]:
    """Test module path -> mean seconds per test in mutmut's stats run."""
    return module_means(stats_seconds(path))


seeded = read_once_per_version(read_seed)


# A run from scratch runs the whole selection twice before the first mutant: the stats pass (MUTANT_UNDER_TEST=stats,
# every mutated function's original code, traced), then the clean run (MUTANT_UNDER_TEST empty, the same original
# code, untraced), both in mutmut's main process, one after the other. The tests the stats pass saw pass are kept
# here, and the clean run that follows in the same process skips them (tests/conftest.py): it would run the same tests
# on the same code again (3-4 minutes on 2 cores). A clean run after stats read from mutants/ (a later `mutmut run`)
# finds this empty and runs every test.
passed_in_stats: set[str] = set()


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


def wanted_functions(args: list[str]) -> frozenset | None:
    """{(module, function)} named by node ids ('tests/a.py::test_f[x-1]' -> ('tests/a.py', 'test_f')); None when any
    argument is not a test function's node id (a module, a directory), which asks for whole modules, or when there is
    none (pytest then collects its testpaths)."""
    if not args:
        return None
    wanted = set()
    for arg in args:
        module, sep, rest = arg.partition("::")
        function = rest.split("[", 1)[0]
        if not sep or not function or "::" in function:
            return None
        wanted.add((module, function))
    return frozenset(wanted)


def write_seed(path: Path, seed: Seed) -> None:
    header = "# mutmut: the tests that killed each mutant, tried first (tests/support/mutmut_killers.py)\n"
    lines = (f"{function} {nodeid}" + ("\t" + ",".join(map(str, numbers)) if numbers else "") + "\n"
             for function, killers in seed.items() for nodeid, numbers in killers.items())
    path.write_text(header + "".join(lines), encoding="utf-8")


def main(root: Path = Path(".")) -> int:
    record = root / "mutants" / RECORD
    if not record.is_dir():
        print(f"no {record}: run mutmut first", file=sys.stderr)
        return 1
    seed = refreshed(read_seed(root / SEED), read_record(record))
    write_seed(root / SEED, seed)
    mutants = sum(len(numbers) for killers in seed.values() for numbers in killers.values())
    print(f"{root / SEED}: {len(seed)} functions, {sum(map(len, seed.values()))} killers, {mutants} mutants' own killers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
