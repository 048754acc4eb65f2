"""Fixtures shared by every suite. Reference models are built by transformers (tests/support/models.py)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # makes `support` importable from every suite

from support import mutmut_killers  # noqa: E402


def share_cores_among_workers() -> None:
    """Under pytest-xdist (`pytest -n 2 tests`), each worker's NumPy BLAS, torch and the processes it starts get
    its share of the cores, not all of them: two workers with two OpenBLAS and two torch threads each on 2 cores
    spin on each other (`pytest -n 2 tests/parity`: 239 s with every library on every core, 197 s with one thread
    per worker; docs/performance.md). A variable the user set is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return
    threads = str(max(1, len(os.sched_getaffinity(0)) // workers))
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # torch reads them when imported
        os.environ.setdefault(variable, threads)
    from threadpoolctl import threadpool_limits

    # NumPy's OpenBLAS was loaded (by this package's pytest plugin) before this file: limit it where it runs
    threadpool_limits(limits=int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")


share_cores_among_workers()

if os.environ.get("MUTANT_UNDER_TEST"):  # forked mutmut children hang on multithreaded torch ops
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # ...but NumPy's OpenBLAS (pthreads, fork-safe) is not limited by that variable: it is loaded already (this
    # package's pytest plugin imports NumPy first). It gets one thread, set in mutmut's main process (MUTANT_UNDER_TEST
    # "stats", "" or "fail": its stats pass, clean run and forced-fail run), which every child forked after inherits:
    # - mutmut runs a child per core, and two children of two spinning OpenBLAS threads each on 2 cores wait on each
    #   other: verify_references' 693 mutants, the same clone one run after the other (2026-12-05), 446
    #   child-seconds with every core each, 313 with one (median 0.66 -> 0.50 s), the same verdicts;
    # - set in each child instead, it cost 36 ms a session (a 0.045 s session took 0.081 s), more than it saved;
    # - the stats pass must sum in the same order as the children: test_verify_summary.py compares a mutant's run
    #   bitwise with the summary the stats pass stored, and with two threads there and one in the children the last
    #   bits differed, a kill of every mutant that test reached (checked: 43 of verify_references' mutants that only
    #   other tests kill were "killed" by it).
    # Float32 sums in another order once moved the stress model's sharpest attention probabilities to margin 1.1 of a
    # fixed float32 tolerance; that baseline is now held to the measured float32 budgets, which pass on one thread.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(len(os.sched_getaffinity(0))))  # the processes tests start
    if not mutmut_killers.mutant_of(os.environ["MUTANT_UNDER_TEST"])[0]:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        # pytest imports each conftest.py afresh in every session, and where PYTHONDONTWRITEBYTECODE is set (as on
        # this project's machines) Python compiles this file again each time, in every mutant's session (~2 ms). Its
        # bytecode is written beside it (mutants/tests/__pycache__, mutmut's copy) in mutmut's main process, and
        # each child reads that instead; a changed file is compiled afresh, as Python checks its size and time.
        import py_compile

        for conftest in (Path(__file__), Path(__file__).parent / "parity" / "conftest.py"):
            if conftest.is_file():
                py_compile.compile(str(conftest))
    # Imported here, in mutmut's fork server, instead of in each child whose property test fails: hypothesis'
    # pytest plugin imports it (and libcst, 0.6 s) to write a patch for the failing example.
    import hypothesis.extra._patching  # noqa: F401

    # No network here, and a mutant that hands transformers a model name instead of a directory (budgets.measure's
    # `honest_model(None, ...)`) made it retry the hub for 25 s before failing: 23 s of one core at the end of a
    # run from scratch (2026-12-05). Offline, it fails in the same way at once. Set before transformers (and
    # huggingface_hub, which reads it when imported) is imported, for the stats pass and every child.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers.models.gpt2.modeling_gpt2  # noqa: F401  (tests import it lazily: 1.5 s per child)


def pytest_configure(config):
    from gpt2core.verification.faults import inject_from_environment

    if os.environ.get("MUTANT_UNDER_TEST"):
        # mutmut forks one pytest session per mutant from a process holding torch and transformers; pytest
        # and hypothesis each run gc.collect() per session, which walks that whole heap (~0.5 s a mutant).
        # Freezing what is already there makes those collections walk only the session's own objects.
        gc.freeze()
    if mutmut_killers.mutant_of(os.environ.get("MUTANT_UNDER_TEST", ""))[0]:
        # A mutant's session writes to /dev/null, and a failure's traceback through a mutated module reads its
        # source (verify.py under mutmut: 130,000 lines) to print it: one line per failure instead (a killed
        # `_parity_section` mutant 0.128 -> 0.102 s, median of 6; docs/mutation.md). The clean and stats runs,
        # whose output mutmut shows when they fail, keep their full tracebacks.
        config.option.tbstyle = "line"
        wanted = mutmut_killers.wanted_functions(config.args)
        if wanted is not None:
            config.stash[WANTED] = wanted
    config._gpt2core_fault = inject_from_environment()


# Under mutmut, a mutant's tests in the order support/mutmut_killers.run_order gives (known killers first, then
# the tests that took under 0.05 s, then module by module, cheapest module first), from the seconds mutmut's stats
# run measured for each test (mutants/mutmut-stats.json, "duration_by_test"). mutmut passes a mutant's tests in set
# order and stops at the first failure (-x), so a killed mutant costs the tests ordered before its killer.
LAST = "tests/negative/test_fault_catalogue.py"


# Before that order, the tests that killed this very mutant in an earlier run, then those that killed the function's
# other mutants, most recent first: most of a function's mutants fall to the same few tests, so a killed mutant then
# costs about one test instead of every test ordered before its killer (a deviation's `covers` mutants: 9 s each
# before, by test_precision's slow tests). Only the order changes; a surviving mutant still runs every test that
# reaches it. The record lives in mutants/, mutmut's working directory, one file per function, and goes with `rm -rf
# mutants`; after it, the killers that earlier runs recorded (mutmut-killers.txt at the repository root, refreshed by
# tests/support/mutmut_killers.py), so that a run from scratch does not find each killer again behind every cheaper
# test. The stats and the seed are read by tests/support/mutmut_killers, which stays imported across mutmut's
# sessions (this file is imported afresh in each), so mutmut's main process reads them once for every child.
# Absolute (cwd: mutants/ when this file is imported): a killer that changes directory (monkeypatch.chdir, as
# test_hub.py and test_command_contract.py do) would otherwise record its kill in its own tmp_path, where the next
# run never finds it: 70 killed mutants of the run of 2026-12-05 (`resolve_model_dir`, `import_factory`,
# `checkpoint_names`) had no recorded killer and cost 0.7-12 s each running the cheaper tests before theirs.
KILLERS = Path(mutmut_killers.RECORD).resolve()
SEED = (Path("..") / mutmut_killers.SEED).resolve()
STATS = Path(mutmut_killers.STATS).resolve()

if os.environ.get("MUTANT_UNDER_TEST"):  # read in mutmut's main process (its forced-fail run), before any child forks
    mutmut_killers.module_seconds(STATS)
    mutmut_killers.seeded(SEED)
    import gpt2core.mutation  # noqa: F401  (the triage check below: 12 ms a child when imported there)


# A mutant triaged as equivalent for exactly its present code (its line in mutmut-equivalents.txt stamped with the
# mutant's code: gpt2core.mutation.triaged_equivalent) runs no test: every test is skipped, so mutmut records it as
# survived, as its tests would if the reason holds, and never as killed. Each such mutant cost every test that reaches
# its function (a minute or two on the verdict path; 182 are stamped now). GPT2CORE_MUTMUT_RUN_TRIAGED=1 runs them too.
RUN_TRIAGED = "GPT2CORE_MUTMUT_RUN_TRIAGED"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MUTANT_UNDER_TEST") == "" and mutmut_killers.passed_in_stats:  # mutmut's clean run
        skip = pytest.mark.skip(reason="passed in this mutmut process's stats pass, on the same code")
        for item in items:
            if item.nodeid in mutmut_killers.passed_in_stats:
                item.add_marker(skip)
        return
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    function, number = mutmut_killers.mutant_of(os.environ["MUTANT_UNDER_TEST"])
    if function and not os.environ.get(RUN_TRIAGED):
        from gpt2core.mutation import EQUIVALENTS_FILE, triaged_equivalent

        reason = triaged_equivalent(os.environ["MUTANT_UNDER_TEST"], Path(".."), Path("..") / EQUIVALENTS_FILE)  # cwd: mutants/
        if reason:
            skip = pytest.mark.skip(reason=f"triaged as equivalent ({RUN_TRIAGED}=1 runs it): {reason}")
            for item in items:
                item.add_marker(skip)
            return
    kills = mutmut_killers.read_kills(KILLERS / f"{function}.txt") if function else []
    first = mutmut_killers.priority(kills, mutmut_killers.seeded(SEED).get(function, {}), number)
    tests = [(item.nodeid, *item.location[:2]) for item in items]
    order = mutmut_killers.run_order(tests, first, mutmut_killers.stats_seconds(STATS), mutmut_killers.module_seconds(STATS), LAST)
    items.sort(key=lambda item: order[item.nodeid])


# mutmut's stats pass on both cores (support/stats_on_two_cores.py): one pytest session in mutmut's main process,
# forked once after collection, each process taking the next test module when it finishes one. GPT2CORE_STATS_ONE_PROCESS=1
# runs it as mutmut does, in one.
@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    if (os.environ.get("MUTANT_UNDER_TEST") != "stats" or os.environ.get("GPT2CORE_STATS_ONE_PROCESS")
            or session.testsfailed or session.config.option.collectonly or len(os.sched_getaffinity(0)) < 2):  # fmt: skip
        return None
    from support.stats_on_two_cores import run_on_two_processes

    return run_on_two_processes(session, mutmut_killers.passed_in_stats)


# mutmut passes a mutant's session the node ids of every test that reaches its function, and pytest collects each
# of their modules whole, every parametrization of every test function in them, before it keeps the ones asked for:
# a `verify_references` mutant's 135 tests lie in 10 modules, collected in 0.28 s of its 2.4 s. Under a mutant, a test
# function no node id names is not collected at all (mutmut_killers.wanted_functions). The stats pass and the clean
# run, which name no tests (the whole selection), collect everything. Medians of children alternating in one parent, a
# mutant's session with all its function's tests: `softmax` 0.360 -> 0.291 s, `verify_references` 1.322 -> 1.275 s,
# `_parity_section` 0.109 -> 0.103 s.
WANTED = pytest.StashKey[frozenset]()  # (module node id, test function name) of every node id the session was given


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    wanted = collector.config.stash.get(WANTED, None)
    if wanted is not None and isinstance(collector, pytest.Module) and collector.istestfunction(obj, name):
        if (collector.nodeid, name) not in wanted:
            return []  # not collected: no node id of this session names it
    return None


def pytest_unconfigure(config):
    if os.environ.get("MUTANT_UNDER_TEST") == "fail":
        # mutmut's forced-fail run is the last session of its main process before it forks a child per mutant: the
        # heap (~1 GiB: torch, transformers, every test module, what the stats pass cached) goes into huge pages, so
        # that each fork copies one page-table entry per 2 MiB instead of one per 4 KiB (support/huge_pages.py: a
        # mutant's session of one short test 84 -> 49 ms on a 2-core VM).
        from support.huge_pages import collapse_into_huge_pages

        collapse_into_huge_pages()


def record_killer(report) -> None:
    """Under a mutant, the test that failed (killed it), for the next mutants of the same function."""
    function, number = mutmut_killers.mutant_of(os.environ.get("MUTANT_UNDER_TEST", ""))
    if function and report.failed:
        KILLERS.mkdir(exist_ok=True)
        with open(KILLERS / f"{function}.txt", "a") as f:  # one short append per killed mutant: concurrent children do not interleave
            f.write(mutmut_killers.record_line(number, report.nodeid))


# Where the suite's time goes (docs/performance.md): with GPT2CORE_DURATIONS_FILE set, the seconds of every test
# (setup, call and teardown, as pytest --durations counts them), summed per module, written there as JSON. Under
# pytest-xdist the controller sees every worker's reports, so one file covers the whole run.
MODULE_SECONDS: dict[str, list] = {}


def pytest_runtest_logreport(report):
    record_killer(report)
    if os.environ.get("MUTANT_UNDER_TEST") == "stats" and report.when == "call" and report.passed:
        mutmut_killers.passed_in_stats.add(report.nodeid)
    if os.environ.get("GPT2CORE_DURATIONS_FILE"):
        seconds_and_tests = MODULE_SECONDS.setdefault(report.nodeid.split("::")[0], [0.0, 0])
        seconds_and_tests[0] += report.duration
        seconds_and_tests[1] += report.when == "call"


@pytest.hookimpl(trylast=True)  # after pytest's own, which removes its base temporary directory when every test passed
def pytest_sessionfinish(session, exitstatus):
    keep_failed_tmp_paths_on_disk(session.config)
    path = os.environ.get("GPT2CORE_DURATIONS_FILE")
    if path and MODULE_SECONDS and not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        import json

        rows = sorted(MODULE_SECONDS.items(), key=lambda kv: -kv[1][0])
        Path(path).write_text(json.dumps({m: {"seconds": round(s, 2), "tests": n} for m, (s, n) in rows}, indent=1))
    end_a_mutants_session_that_could_not_collect(exitstatus)


def end_a_mutants_session_that_could_not_collect(exitstatus) -> None:
    """A mutant that breaks what pytest runs while it collects (the conformance plugin resolves its subject through
    `import_factory`, the parity conftest parametrizes with `checkpoint_names`) leaves node ids that name nothing: a
    usage error (exit status 4), on which mutmut raises. In a mutant's forked child that exception ends the child with
    status 1, a kill, but only once it has unwound mutmut's own loop in the child and Python has finished with the
    ~1 GiB heap the child inherited: 2.1-2.7 s for each of 21 such mutants in a run from scratch of 2026-12-06, and
    0.05-0.13 s each in the next, where the child ends here with that same status, at once (what pytest printed of
    the error flushed first)."""
    under_a_mutant = mutmut_killers.mutant_of(os.environ.get("MUTANT_UNDER_TEST", ""))[0] is not None
    if exitstatus == pytest.ExitCode.USAGE_ERROR and under_a_mutant:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


# Scratch in memory: the reference sets and dumps that verify, the conformance suite's examples, the commands under
# test and the tests themselves (tmp_path) write to temporary directories hold thousands of small files (a C engine run
# on the tiny model: 2,638 dumps), and on an ext4 disk mounted with `discard` every write and unlink waits on the block
# device (that run: 4.3 s on disk, 1.8 s in memory; deleting its examples' files took 8 of the 11.7 s of 20
# differential examples of the C engine). Those directories, pytest's base temporary directory among them, go to a
# tmpfs (/dev/shm) when it has room, so they never reach the disk. pytest removes a passing test's tmp_path when it
# ends (setup.cfg: tmp_path_retention_policy = failed) and its base directory when every test passed; when a test
# failed, that directory (the failed tests' tmp_path and the module-wide ones) is moved to the disk, where pytest
# would have kept it, and the session says where. TMPDIR set by the user is kept.
SCRATCH_MIN_FREE = 8 << 30  # bytes of /dev/shm that must be free: one 124M run's references and dumps are ~1.2 GB
SCRATCH = pytest.StashKey[tuple]()  # (the scratch directory, the temporary directory it replaced)


def scratch_in_memory(config) -> None:
    """For this session: TMPDIR and tempfile.tempdir point at a new directory in /dev/shm, removed and both restored
    when the session ends (mutmut runs several sessions in one process). Not under mutmut (MUTANT_UNDER_TEST set,
    even empty: its clean run), whose measured timings are the disk's."""
    shm = Path("/dev/shm")
    if "TMPDIR" in os.environ or "MUTANT_UNDER_TEST" in os.environ or not shm.is_dir() or not os.access(shm, os.W_OK):
        return
    free = os.statvfs(shm)
    if free.f_bavail * free.f_frsize < SCRATCH_MIN_FREE:
        return
    import shutil
    import tempfile

    disk, before = tempfile.gettempdir(), tempfile.tempdir
    scratch = tempfile.mkdtemp(prefix="gpt2core-tests-", dir=shm)
    os.environ["TMPDIR"] = tempfile.tempdir = scratch  # this process's, its commands' and pytest's temporary files
    config.stash[SCRATCH] = (Path(scratch), disk)

    def restore():
        shutil.rmtree(scratch, ignore_errors=True)
        os.environ.pop("TMPDIR", None)
        tempfile.tempdir = before

    config.add_cleanup(restore)


def keep_failed_tmp_paths_on_disk(config) -> None:
    """pytest's base temporary directory, when it is still in the scratch at the end (a test failed), moved to the
    disk's temporary directory before the scratch is removed. pytest-xdist's workers' directories lie inside the
    controller's, which moves them."""
    scratch, disk = config.stash.get(SCRATCH, (None, None))
    if scratch is None or hasattr(config, "workerinput"):
        return
    base = config._tmp_path_factory._basetemp  # None when no test made one (getbasetemp() would make it now)
    if base is None or not (base.is_dir() and base.is_relative_to(scratch)):
        return
    import shutil
    import tempfile

    kept = Path(tempfile.mkdtemp(prefix="gpt2core-failed-tmp-path-", dir=disk)) / base.name
    shutil.move(base, kept)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")  # after the progress line, which ends without one
        reporter.write_line(f"gpt2core: the failed tests' tmp_path moved out of memory: {base} -> {kept}")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which makes the base temporary directory for its workers
def pytest_sessionstart(session):
    scratch_in_memory(session.config)


def pytest_report_header(config):
    name = config._gpt2core_fault
    return f"gpt2core: FAULT INJECTED: {name} (this run must fail)" if name else None


@pytest.fixture
def fresh_vocabularies(monkeypatch):
    """No vocabulary read yet in this process (gpt2core.engine.tokenizer keeps the ones it read, by content): the test
    reads its own files, so the reading and its checks are under test, in mutmut's children too, which would otherwise
    inherit what the stats pass read with the unmutated code."""
    from gpt2core.engine import tokenizer

    monkeypatch.setattr(tokenizer, "_vocabularies", {})


@pytest.fixture(scope="session")
def stress_dir():
    """The fault catalogue's stress model (sharp attention, outlier channels), built once per machine."""
    from support.models import CACHE

    from gpt2core.verification.stress import stress_model_dir

    return stress_model_dir(CACHE)


@pytest.fixture(scope="session")
def tiny_dir():
    from support.models import hf_model_dir

    return hf_model_dir("tiny")


@pytest.fixture(scope="session")
def gpt2_124m_dir():
    from support.models import hf_model_dir

    return hf_model_dir("124M")


def _register_hypothesis_profiles():
    """dev (default), ci, audit, mutmut and the fault catalogue's profiles; choose with GPT2CORE_HYPOTHESIS_PROFILE."""
    from hypothesis import HealthCheck, Phase, settings

    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("dev", max_examples=20, **common)
    settings.register_profile("ci", max_examples=100, database=None, print_blob=True, **common)
    settings.register_profile("audit", max_examples=500, database=None, print_blob=True, **common)
    # mutmut runs each mutant in a forked child: no shared database, same examples every time, and no
    # shrinking or explaining of a failure (only whether a test fails counts; shrinking took ~2 s a mutant)
    settings.register_profile("mutmut", max_examples=15, database=None, derandomize=True,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate], **common)  # fmt: skip
    # the fault catalogue's property runs (tests/negative): only whether a module fails counts, so no shrinking
    # (a drawn model per shrink step took up to 97 s a fault); faults-ops draws as many examples as ci
    no_shrink = [Phase.explicit, Phase.reuse, Phase.generate]
    settings.register_profile("faults", max_examples=20, database=None, phases=no_shrink, **common)
    settings.register_profile("faults-ops", max_examples=100, database=None, phases=no_shrink, **common)
    default = "mutmut" if os.environ.get("MUTANT_UNDER_TEST") else "dev"
    settings.load_profile(os.environ.get("GPT2CORE_HYPOTHESIS_PROFILE", default))


_register_hypothesis_profiles()
