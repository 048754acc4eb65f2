"""What one mutant's pytest session costs under mutmut, with one set of pytest arguments against another, measured in
the same run. A benchmark, not a test: run it on 2 cores with nothing else running, after a `mutmut run` has left
mutants/ (its stats and mutated code).

    python benchmarks/mutmut_sessions.py MUTANT TEST [TEST ...] [--variant "ARGS"]... [--rounds 15]

    python benchmarks/mutmut_sessions.py gpt2core.verification.tolerances.x_scaled_atol__mutmut_1 \\
        tests/engine/test_loading.py::test_scaled_atol_scales_by_max_abs_with_a_floor_of_one \\
        --variant "" --variant "-p no:logging -p no:unittest -p no:faulthandler"

It does what mutmut's ForkRunner does: one parent runs the tests once as mutmut's stats pass would
(MUTANT_UNDER_TEST=stats), then forks one child per session, each running `PytestRunner.run_tests` under MUTANT with
setup.cfg's `pytest_add_cli_args` and the variant's arguments after them, output to /dev/null. The variants take turns
round by round, so a change in the machine's load falls on all of them alike. Prints each variant's median and mean
wall seconds per session, its ratio to the first variant's median, and the exit statuses its sessions gave (1: the
mutant was killed).
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mutant", help="a mutant's name, as mutmut gives it (MUTANT_UNDER_TEST)")
    parser.add_argument("tests", nargs="+", help="the node ids the session runs, relative to mutants/")
    parser.add_argument("--variant", action="append", default=None,
                        help='pytest arguments added after setup.cfg\'s (repeat; default: "" alone)')
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    variants = args.variant if args.variant is not None else [""]
    if not (ROOT / "mutants" / "mutmut-stats.json").is_file():
        print(f"no {ROOT / 'mutants' / 'mutmut-stats.json'}: run mutmut first", file=sys.stderr)
        return 1

    os.chdir(ROOT)
    from mutmut.__main__ import set_mutant_under_test
    from mutmut.runners.harness import PytestRunner
    from mutmut.stats import load_stats
    from mutmut.utils.file_utils import setup_source_paths

    setup_source_paths()
    load_stats()
    runner = PytestRunner()
    runner.prepare_main_test_run()
    base = list(runner._pytest_add_cli_args)
    set_mutant_under_test("stats")
    warm = runner.run_tests(mutant_name=None, tests=args.tests)
    if warm != 0:
        print(f"the tests fail without a mutant (pytest exit {warm}): nothing to measure", file=sys.stderr)
        return 1
    gc.freeze()

    seconds: dict[str, list[float]] = {v: [] for v in variants}
    exits: dict[str, set[int]] = {v: set() for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            runner._pytest_add_cli_args = base + shlex.split(variant)
            start = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                set_mutant_under_test(args.mutant)
                sys.stdout = sys.stderr = open(os.devnull, "w")
                os._exit(runner.run_tests(mutant_name=args.mutant, tests=args.tests))
            _, status = os.waitpid(pid, 0)
            seconds[variant].append(time.perf_counter() - start)
            exits[variant].add(os.waitstatus_to_exitcode(status))

    first = statistics.median(seconds[variants[0]])
    print(f"{args.mutant}: {len(args.tests)} test(s), {args.rounds} sessions per variant")
    for variant in variants:
        median = statistics.median(seconds[variant])
        print(f"  {variant or '(setup.cfg only)':60} median {median:.3f} s  mean {statistics.mean(seconds[variant]):.3f} s"
              f"  x{median / first:.2f}  exit {sorted(exits[variant])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
