"""mutmut's stats pass run on two processes instead of one.

mutmut runs its stats pass (MUTANT_UNDER_TEST=stats: every selected test once, recording which mutated functions it
reaches and how long its call took) as one pytest session in its main process, before any mutant: on 2 cores one
of them waits. Here that session's loop forks once after collection, and the two processes take the test modules in
turn, each claiming the next unclaimed module when it finishes one (a module's tests stay in one process, so its
fixtures are built once). The fork then sends back what mutmut's stats plugin recorded in it (mutmut's state:
tests by mutated function, durations, callers), what tests/conftest.py kept (the tests that passed) and what
support/engine_memo.py kept (the engine's answers and the reference arrays its tests read, for the mutants' sessions
mutmut forks from the main process), and the main process merges them before mutmut writes its stats. A failure in
either process fails the session (with -x, both stop), and the fork's failures are printed by the main process.

What mutmut records stays what one process records, but for one thing: mutmut credits the functions a fixture
reaches while it is being set up to the test that asked for it first, in the process that built it. A session-scoped
fixture is built in each process, so its functions are credited to the first test that needs it in each, which need
not be the test one process would have credited (measured on the whole selection, 2026-12-06: 34 of 237 functions
credited with more tests, 5 with one test fewer, each a test whose only link to the function was a shared fixture's
setup; every mutant's verdict the same as a one-process stats pass gave). GPT2CORE_STATS_ONE_PROCESS=1 keeps it in
one process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
from itertools import groupby
from pathlib import Path

from support import engine_memo


def module_groups(items: list) -> list[list]:
    """The session's items in runs of one module each, in collection order."""
    return [list(group) for _, group in groupby(items, key=lambda item: item.nodeid.split("::")[0])]


class Claims:
    """The next unclaimed module, shared by the two processes (shared memory made before the fork), and a flag
    either sets when the session must stop (-x after a failure)."""

    def __init__(self, groups: list[list]):
        self.groups = groups
        context = multiprocessing.get_context("fork")
        self._next = context.RawValue("i", 0)
        self._stop = context.RawValue("b", 0)
        self._lock = context.Lock()

    def claim(self) -> list | None:
        with self._lock:
            index = self._next.value
            self._next.value = index + 1
        return None if self._stop.value or index >= len(self.groups) else self.groups[index]

    def stop(self) -> None:
        self._stop.value = 1

    @property
    def stopped(self) -> bool:
        return bool(self._stop.value)


def run_claimed(session, claims: Claims) -> None:
    """Run modules as this process claims them, until none is left or the session must stop. Each test is told
    the next test this process runs (pytest tears down the fixtures that one does not share)."""
    group = claims.claim()
    while group:
        following = None
        for position, item in enumerate(group):
            if position + 1 < len(group):
                nextitem = group[position + 1]
            else:
                following = claims.claim()
                nextitem = following[0] if following else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail or session.shouldstop:
                claims.stop()
            if claims.stopped:
                return
        group = following


def recorded(passed: set[str], failures: list[str]) -> dict:
    """What this process's stats pass recorded: mutmut's state and the conftest's tests that passed."""
    from mutmut.state import state

    mutmut = state()
    return {
        "tests_by_mangled_function_name": {k: sorted(v) for k, v in mutmut.tests_by_mangled_function_name.items()},
        "duration_by_test": dict(mutmut.duration_by_test),
        "function_dependencies": {k: sorted(v) for k, v in mutmut.function_dependencies.items()},
        "passed": sorted(passed),
        "failures": failures,
    }


def merge(fork: dict, passed: set[str]) -> None:
    """The fork's records added to this process's."""
    from mutmut.state import state

    mutmut = state()
    for function, tests in fork["tests_by_mangled_function_name"].items():
        mutmut.tests_by_mangled_function_name[function] |= set(tests)
    for test, seconds in fork["duration_by_test"].items():
        mutmut.duration_by_test[test] = seconds
    for function, callers in fork["function_dependencies"].items():
        mutmut.function_dependencies[function] |= set(callers)
    passed |= set(fork["passed"])


class FailureKeeper:
    """A pytest plugin keeping each failed report's node id, phase and traceback."""

    def __init__(self):
        self.failures: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed:
            self.failures.append(f"{report.nodeid} ({report.when}):\n{report.longreprtext}")


def run_on_two_processes(session, passed: set[str]) -> bool:
    """pytest_runtestloop for mutmut's stats pass; `passed` is the conftest's set of tests that passed."""
    claims = Claims(module_groups(session.items))
    descriptor, name = tempfile.mkstemp(prefix="gpt2core-stats-fork-", suffix=".json")
    os.close(descriptor)
    out = Path(name)
    kept = out.with_suffix(".npz")  # what support.engine_memo kept in the fork
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the fork: its modules, its records to `out`, and out without pytest's ending
        status = 1
        try:
            keeper = FailureKeeper()
            session.config.pluginmanager.register(keeper, "gpt2core-stats-fork-failures")
            run_claimed(session, claims)
            engine_memo.export(kept)
            out.write_text(json.dumps(recorded(passed, keeper.failures)))
            status = 0
        finally:
            sys.stdout.flush()
            os._exit(status)
    try:
        run_claimed(session, claims)
    finally:
        _, wait_status = os.waitpid(pid, 0)
    try:
        if os.waitstatus_to_exitcode(wait_status) != 0:
            raise RuntimeError(f"the stats pass's second process ended with {os.waitstatus_to_exitcode(wait_status)}")
        fork = json.loads(out.read_text())
        engine_memo.absorb(kept)
    finally:
        out.unlink(missing_ok=True)
        kept.unlink(missing_ok=True)
    merge(fork, passed)
    if fork["failures"]:
        session.testsfailed += len(fork["failures"])
        print("\nFailed in the stats pass's second process:\n" + "\n\n".join(fork["failures"]), flush=True)
    return True
