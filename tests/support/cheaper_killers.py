"""Cheaper killers for mutmut's dearest mutants, found after a run and kept in mutmut-killers.txt.

A killed mutant costs one pytest session: its start, then its tests up to the first that fails. Its own killer (the
seed, tests/support/mutmut_killers.py) runs first, and that killer is whichever test happened to kill it in some
earlier run, often behind the function's other killers: a `write_junit` mutant killed in 0.45 s by a whole verify
run's report check falls to a 0.08 s test of the JUnit file alone, which was never tried first. This tool looks for
such tests and makes them the mutants' own killers. Only the order of a mutant's tests changes, never which tests
run or what a verdict is: a mutant whose new killer no longer kills it runs every other test, as before.

    python tests/support/cheaper_killers.py [--min-seconds 0.15] [--limit N] [MUTANT ...]  # after `mutmut run`

The seed is first refreshed from the run's record (as `python tests/support/mutmut_killers.py` does). For each
mutant the run killed in at least --min-seconds (mutants/**/*.meta), the tests that reach its function
(mutmut's stats) other than its killer and quicker than its session, cheapest first, as many as fit in that session's
time, are candidates. One process runs them all once as mutmut's stats pass does; then, as mutmut's children are,
sessions are forked from it, two at a time: the mutant's killer alone, the candidates in that order up to the first
that fails, and that one alone. A candidate that kills the mutant in under CHEAPER of its killer's time becomes its
own killer in the seed (any candidate that kills it, where its killer no longer does). Prints what it searched, what
it adopted and the seconds measured for both; each mutant's sessions go to mutants/.cheaper-killers.jsonl.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: tests/ on the path, so that `support` is the module the conftest uses
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support import mutmut_killers  # noqa: E402
from support.mutmut_killers import Seed  # noqa: E402

# A candidate is adopted when its session takes under this fraction of the killer's, both forked from the same
# process in the same pass: sessions of one test repeat within ~10% on a quiet machine (benchmarks/mutmut_sessions.py).
CHEAPER = 0.75


def dear_mutants(metas: list[dict], min_seconds: float) -> dict[str, float]:
    """Mutant name -> its session's seconds, for each mutant a run killed (exit status 1) in at least `min_seconds`;
    `metas` are mutmut's per-module results ({"exit_code_by_key", "durations_by_key"})."""
    dear: dict[str, float] = {}
    for meta in metas:
        for name, seconds in meta.get("durations_by_key", {}).items():
            if meta.get("exit_code_by_key", {}).get(name) == 1 and seconds >= min_seconds:
                dear[name] = seconds
    return dear


def candidates(tests: list[str], test_seconds: dict[str, float], killer: str, seconds: float) -> list[str]:
    """The tests to try instead of `killer` on a mutant whose session took `seconds`: the others whose stats time is
    known, cheapest first (ties by node id), as long as their times together stay under `seconds`."""
    chosen: list[str] = []
    spent = 0.0
    for test in sorted((t for t in tests if t != killer and t in test_seconds), key=lambda t: (test_seconds[t], t)):
        spent += test_seconds[test]
        if spent >= seconds:
            break
        chosen.append(test)
    return chosen


def own_killer(seed: Seed, record: list[mutmut_killers.Kill], function: str, number: int) -> str | None:
    """The test a mutant's session tries first: its latest kill in the run's record, else its seeded killer."""
    own = mutmut_killers.own_killers(record, seed.get(function, {}), number)
    return own[0] if own else None


def adopted(seed: Seed, function: str, number: int, killer: str) -> Seed:
    """The seed with `killer` as the one own killer of the function's mutant `number`: the number leaves every other
    killer's list (a killer left with none keeps its line: it still ranks among the function's killers) and joins
    `killer`'s, which is added after the function's others when it is new."""
    killers = {nodeid: [n for n in numbers if n != number] for nodeid, numbers in seed.get(function, {}).items()}
    killers[killer] = sorted({*killers.get(killer, []), number})
    return {**seed, function: killers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-seconds", type=float, default=0.15, help="search mutants killed in at least this long")
    parser.add_argument("--limit", type=int, default=None, help="search at most this many, dearest first")
    parser.add_argument("mutants", nargs="*", help="search only these (mutmut's names)")
    args = parser.parse_args(argv)
    root = Path(".").resolve()
    stats_file = root / "mutants" / mutmut_killers.STATS
    if not stats_file.is_file():
        print(f"no {stats_file}: run mutmut first", file=sys.stderr)
        return 1
    stats = json.loads(stats_file.read_text())
    metas = [json.loads(p.read_text()) for p in sorted((root / "mutants").rglob("*.meta"))]
    dear = dear_mutants(metas, args.min_seconds)
    if args.mutants:
        named = set(args.mutants)
        dear = {name: seconds for name, seconds in dear.items() if name in named}
    record = mutmut_killers.read_record(root / "mutants" / mutmut_killers.RECORD)
    # the run's own kills first (as `python tests/support/mutmut_killers.py` refreshes the seed), then what is adopted
    seed = mutmut_killers.refreshed(mutmut_killers.read_seed(root / mutmut_killers.SEED), record)
    test_seconds = stats["duration_by_test"]
    plan = []
    for name, seconds in sorted(dear.items(), key=lambda kv: -kv[1])[: args.limit]:
        function, number = mutmut_killers.mutant_of(name)
        killer = own_killer(seed, record.get(function, []), function, number)
        tests = sorted(stats["tests_by_mangled_function_name"].get(function, []))
        tried = candidates(tests, test_seconds, killer, seconds) if killer else []
        if tried:
            plan.append((name, seconds, function, number, killer, tried))
    print(f"{len(dear)} mutants killed in >= {args.min_seconds} s; {len(plan)} with a killer and cheaper candidates")
    results = search(root, plan)
    saved, count = 0.0, 0
    for (name, _, function, number, _, _), result in zip(plan, results):
        if result["adopt"]:
            seed = adopted(seed, function, number, result["found"])
            saved += result["killer_s"] - result["found_s"]
            count += 1
            print(f"  {name}: {result['killer_s']:.2f} s -> {result['found_s']:.2f} s  {result['found']}")
    mutmut_killers.write_seed(root / mutmut_killers.SEED, seed)
    print(f"{count} adopted: {saved:.0f} session-seconds fewer than their killers took, measured here; "
          f"{root / mutmut_killers.SEED} written")
    return 0


def search(root: Path, plan: list) -> list[dict]:
    """Each planned mutant's sessions, forked from one warmed process two at a time (as mutmut's children run):
    {"killer_s", "killer_rc", "found", "found_s", "found_rc", "adopt"}."""
    os.chdir(root)
    from mutmut.__main__ import set_mutant_under_test
    from mutmut.runners.harness import PytestRunner
    from mutmut.stats import load_stats
    from mutmut.utils.file_utils import change_cwd, setup_source_paths

    setup_source_paths()  # before anything imports gpt2core: the sessions import mutmut's mutated copy
    from support.huge_pages import collapse_into_huge_pages

    load_stats()
    runner = PytestRunner()
    runner.prepare_main_test_run()
    every = sorted({test for *_, killer, tried in plan for test in (killer, *tried)})
    set_mutant_under_test("stats")  # as mutmut's stats pass: imports, builds and keeps what the sessions share
    once_each = [arg for arg in runner._pytest_add_cli_args if arg != "-x"]
    saved_args = runner._pytest_add_cli_args
    runner._pytest_add_cli_args = once_each
    runner.run_tests(mutant_name=None, tests=every)
    runner._pytest_add_cli_args = saved_args
    collapse_into_huge_pages()
    gc.freeze()

    class FirstFailure:
        def __init__(self):
            self.nodeid = None

        def pytest_runtest_logreport(self, report):
            if report.failed and self.nodeid is None:
                self.nodeid = report.nodeid

    scratch = root / "mutants" / ".cheaper-killers-scratch"

    def session(mutant: str, tests: list[str], seconds: float) -> tuple[float, int, str | None]:
        """A forked session of `tests` under `mutant`, killed after `seconds` (a mutant can make a test hang)."""
        read, write = os.pipe()
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            signal.alarm(max(2, math.ceil(seconds)))
            mutmut_killers.RECORD = str(scratch)  # this search's kills are not the run's record
            order = {test: place for place, test in enumerate(tests)}
            mutmut_killers.priority = lambda *_: {}
            mutmut_killers.run_order = lambda items, *_: {nodeid: order.get(nodeid, len(order)) for nodeid, *_ in items}
            set_mutant_under_test(mutant)
            sys.stdout = sys.stderr = open(os.environ.get("GPT2CORE_CHEAPER_KILLERS_OUTPUT", os.devnull), "a")
            first = FirstFailure()
            with change_cwd("mutants"):
                rc = runner.execute_pytest(runner._pytest_args_regular_run(tests), plugins=[first])
            os.write(write, json.dumps([rc, first.nodeid]).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            answer = pipe.read()
        os.waitpid(pid, 0)
        rc, failed = json.loads(answer) if answer else (-1, None)
        return time.perf_counter() - start, rc, failed

    def one(mutant, seconds, killer, tried) -> dict:
        limit = 10 * seconds  # mutmut's own timeout is about ten times a mutant's tests' time
        killer_s, killer_rc, _ = session(mutant, [killer], limit)
        _, _, found = session(mutant, tried, limit)
        found_s, found_rc, _ = session(mutant, [found], limit) if found else (0.0, 0, None)
        adopt = bool(found) and found_rc == 1 and (killer_rc != 1 or found_s < CHEAPER * killer_s)
        return {"killer_s": killer_s, "killer_rc": killer_rc, "found": found, "found_s": found_s, "found_rc": found_rc,
                "adopt": adopt}

    out = root / "mutants" / ".cheaper-killers.jsonl"
    out.write_text("")
    workers = []
    for half in (plan[0::2], plan[1::2]):
        pid = os.fork()
        if pid == 0:
            with open(out, "a") as results:
                for name, seconds, _, _, killer, tried in half:
                    row = {"mutant": name, **one(name, seconds, killer, tried)}
                    results.write(json.dumps(row) + "\n")
                    results.flush()
            os._exit(0)
        workers.append(pid)
    for pid in workers:
        os.waitpid(pid, 0)
    rows = {row["mutant"]: row for row in map(json.loads, out.read_text().splitlines())}
    return [rows.get(name, {"found": None, "adopt": False}) for name, *_ in plan]


if __name__ == "__main__":
    sys.exit(main())
