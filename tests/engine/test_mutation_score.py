"""`gpt2core mutation-score` on mutmut result files written here: strict counting, gating, shard merging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.mutmut_runs import write_run

from gpt2core.cli import main
from gpt2core.mutation import MutationResultsError, merge, read_run, triaged_equivalent


def score_json(capsys, *args):
    rc = main(["mutation-score", "--json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_all_killed_passes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(write_run(tmp_path, {f"m{i}": 1 for i in range(20)}))
    rc, r = score_json(capsys)
    assert rc == 0 and r["score"] == 1.0 and r["killed"] == r["total"] == 20


def test_mutants_the_type_checker_caught_are_kills_counted_apart(tmp_path, capsys, monkeypatch):
    """mutmut's 37 ("caught by type check": a type_check_command rejected the mutant, as
    tests/engine/test_types.py rejects any such code) is a kill, and the report says how many were."""
    monkeypatch.chdir(write_run(tmp_path, {"a": 1, "b": 37, "c": 37, "d": 0}))
    rc, r = score_json(capsys, "--min", "0.7")
    assert (r["killed"], r["killed_by_type_check"], r["survived"], r["other"], r["score"]) == (3, 2, 1, 0, 0.75)
    assert rc == 1 and r["problems"] == ["1 survivor(s) without a reason in mutmut-equivalents.txt"]


def test_timeouts_are_not_kills_and_fail_the_gate(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(write_run(tmp_path, {**{f"m{i}": 1 for i in range(99)}, "slow": 36}))
    rc, r = score_json(capsys, "--min", "0.5")
    assert rc == 1 and r["score"] == 0.99 and r["timeout"] == 1 and "1 mutant(s) timeout" in r["problems"]


def test_unchecked_mutants_and_empty_runs_fail(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(write_run(tmp_path, {"a": 1, "b": None}))
    rc, r = score_json(capsys, "--min", "0.1")
    assert rc == 1 and r["not_checked"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert main(["mutation-score"]) == 2
    assert "no mutmut results" in capsys.readouterr().err


def test_survivors_need_a_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(write_run(tmp_path, {**{f"m{i}": 1 for i in range(99)}, "gpt2core.ops.x_gelu__mutmut_3": 0}))
    rc, r = score_json(capsys)
    assert rc == 1 and r["survivors"] == [{"name": "gpt2core.ops.x_gelu__mutmut_3", "reason": None}]
    (tmp_path / "mutmut-equivalents.txt").write_text("# triage\ngpt2core.ops.x_gelu__mutmut_3: 0.5*x vs x*0.5, same float\n")
    rc, r = score_json(capsys, "--stamp")
    assert rc == 0 and r["score"] == 0.99 and r["survivors"][0]["reason"] == "0.5*x vs x*0.5, same float"
    rc, r = score_json(capsys, "--min", "0.995")
    assert rc == 1


def test_shards_merge_into_the_single_run_result(tmp_path, capsys):
    single = {"a": 1, "b": 0, "c": 1, "d": 36}
    shard1 = write_run(tmp_path / "s1", {"a": 1, "b": 0, "c": None, "d": None})
    shard2 = write_run(tmp_path / "s2", {"a": None, "b": None, "c": 1, "d": 36})
    assert merge([read_run(shard1), read_run(shard2)]) == single
    rc, r = score_json(capsys, "--merge", str(shard1), str(shard2))
    assert (r["killed"], r["survived"], r["timeout"], r["total"]) == (2, 1, 1, 4)


def test_disagreeing_shards_are_an_error(tmp_path):
    s1, s2 = write_run(tmp_path / "s1", {"a": 1}), write_run(tmp_path / "s2", {"a": 0})
    with pytest.raises(MutationResultsError, match="shards disagree on a"):
        merge([read_run(s1), read_run(s2)])


GELU_3 = "gpt2core.ops.x_gelu__mutmut_3"


def test_a_reason_counts_only_for_the_code_it_was_written_for(tmp_path, capsys, monkeypatch):
    """mutmut numbers a function's mutants again when its source changes: the triaged name can then be another
    mutation. A line needs its mutant's code stamp (--stamp adds it to unstamped lines, never replaces one); once
    the code under that name changes, the reason no longer counts and the gate names the mutant."""
    killed = {f"m{i}": 1 for i in range(98)}
    not_run = "gpt2core.ops.x_gelu__mutmut_4"  # its line waits: stamped once it survived and was read against it
    monkeypatch.chdir(write_run(tmp_path, {**killed, GELU_3: 0, not_run: None}, code={GELU_3: "x * 0.5"}))
    equivalents = tmp_path / "mutmut-equivalents.txt"
    equivalents.write_text(f"{GELU_3}: 0.5*x vs x*0.5, same float\n{not_run}: triaged in an earlier run\n")
    rc, r = score_json(capsys)
    assert rc == 1 and r["problems"] == ["1 mutant(s) not checked",
                                         f"1 survivor(s) triaged without a code stamp in mutmut-equivalents.txt "
                                         f"(after reading each, `gpt2core mutation-score --stamp`): {GELU_3}"]  # fmt: skip
    rc, said = main(["mutation-score", "--json", "--min", "0.9", "--stamp"]), capsys.readouterr()
    assert rc == 1 and json.loads(said.out)["problems"] == ["1 mutant(s) not checked"] and "stamped 1 line(s)" in said.err
    stamp = equivalents.read_text().split()[1].rstrip(":")
    assert len(stamp) == 13 and equivalents.read_text() == (f"{GELU_3} {stamp}: 0.5*x vs x*0.5, same float\n"
                                                           f"{not_run}: triaged in an earlier run\n")  # fmt: skip
    killed[not_run] = 1
    write_run(tmp_path, {**killed, GELU_3: 0}, code={GELU_3: "x * 0.5  # a comment, and the name renumbered"})
    assert score_json(capsys)[0] == 0  # comments and layout are not code
    write_run(tmp_path, {**killed, GELU_3: 0}, code={GELU_3: "x + 0.5"})  # renumbered: another mutation
    rc, r = score_json(capsys, "--stamp")
    assert rc == 1 and equivalents.read_text().split()[1].rstrip(":") == stamp  # a stale stamp is never replaced
    assert r["problems"][0].startswith(f"1 survivor(s) triaged for other code") and f"{GELU_3} (triaged {stamp}, now @" in r["problems"][0]


def test_a_survivor_whose_code_is_missing_is_not_excused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(write_run(tmp_path, {"m1": 1, GELU_3: 0}))
    (tmp_path / "mutants" / "src" / "gpt2core" / "ops.py").unlink()
    (tmp_path / "mutmut-equivalents.txt").write_text(f"{GELU_3} @0123456789ab: a reason\n")
    rc, r = score_json(capsys, "--min", "0.1")
    assert rc == 1 and f"{GELU_3} (triaged @0123456789ab, now @<code not found>)" in r["problems"][0]


@pytest.mark.parametrize("line", ["a b: two names", "a @: an empty stamp", "a: ", "no colon"])
def test_a_malformed_triage_line_is_an_error_naming_it(tmp_path, capsys, monkeypatch, line):
    monkeypatch.chdir(write_run(tmp_path, {"m1": 1}))
    (tmp_path / "mutmut-equivalents.txt").write_text(f"# ok\n{line}\n")
    assert main(["mutation-score"]) == 2
    assert f"mutmut-equivalents.txt:2: expected '<mutant name> [@<code stamp>]: <reason>', got {line!r}" in capsys.readouterr().err


def test_a_mutant_is_triaged_only_while_its_line_is_stamped_with_its_code(tmp_path):
    """What tests/conftest.py reads to run no test for a mutant under mutmut: the reason, only while the line's
    stamp is the mutant's present code (a line without a stamp, another mutation under the name, no line: None)."""
    equivalents = tmp_path / "mutmut-equivalents.txt"
    write_run(tmp_path, {GELU_3: 0}, code={GELU_3: "x * 0.5"})
    equivalents.write_text(f"{GELU_3}: same float\n")
    assert triaged_equivalent(GELU_3, tmp_path, equivalents) is None
    main(["mutation-score", "--stamp", "--merge", str(tmp_path), "--equivalents", str(equivalents)])
    assert triaged_equivalent(GELU_3, tmp_path, equivalents) == "same float"
    assert triaged_equivalent("gpt2core.ops.x_gelu__mutmut_4", tmp_path, equivalents) is None
    write_run(tmp_path, {GELU_3: 0}, code={GELU_3: "x + 0.5"})
    assert triaged_equivalent(GELU_3, tmp_path, equivalents) is None


# --- the killers a run records and the next run tries first (tests/support/mutmut_killers.py) ----------------------


def test_a_runs_killers_refresh_the_seed_most_frequent_first_with_the_mutants_each_killed_and_read_back(tmp_path, capsys):
    """Each function the run reached keeps every killer, most frequent first (ties: the earlier kill first), with
    the numbers of the mutants it killed, then the seeded killers of its mutants the run killed none of (a run cut
    short), with those numbers only; a function it did not reach keeps its seeded lines (with or without numbers);
    a record line from before numbers counts as a kill of no known mutant; comments and blank lines are not killers;
    node ids with spaces survive the round trip."""
    from support import mutmut_killers as mk

    seed = "# a comment\n\nm.f old::a\t1\nm.f t::c\t4,41\nm.f old::z\t40\nm.f old::none\nm.g kept::x\t3,12\nm.g kept::y\n"
    (tmp_path / mk.SEED).write_text(seed)
    record = tmp_path / "mutants" / mk.RECORD
    record.mkdir(parents=True)
    kills = [(1, "t::a"), (12, "t::b[x y]"), (3, "t::a"), (4, "t::c"), (5, "t::a"), (6, "t::b[x y]"), (7, "t::d")]
    (record / "m.f.txt").write_text("".join(mk.record_line(n, nodeid) for n, nodeid in kills) + "t::e\n")
    (record / "m.h.txt").write_text("")  # a record with no kill leaves nothing
    assert mk.read_kills(record / "m.f.txt") == [*kills, (None, "t::e")]
    assert mk.main(tmp_path) == 0
    assert mk.read_seed(tmp_path / mk.SEED) == {
        "m.f": {"t::a": [1, 3, 5], "t::b[x y]": [6, 12], "t::c": [4, 41], "t::d": [7], "t::e": [], "old::z": [40]},
        "m.g": {"kept::x": [3, 12], "kept::y": []},
    }
    assert "2 functions, 8 killers, 11 mutants' own killers" in capsys.readouterr().out
    assert mk.read_seed(tmp_path / "none.txt") == {} and mk.read_kills(tmp_path / "none.txt") == []
    assert mk.main(tmp_path / "no-run") == 1 and "run mutmut first" in capsys.readouterr().err


def test_mutmut_names_a_mutant_by_its_function_and_number():
    from support.mutmut_killers import mutant_of

    assert mutant_of("gpt2core.engine.ops.x_gelu__mutmut_3") == ("gpt2core.engine.ops.x_gelu", 3)
    assert mutant_of("gpt2core.engine.cache.xǁKVCacheǁappend__mutmut_17") == ("gpt2core.engine.cache.xǁKVCacheǁappend", 17)
    for name in ("stats", "fail", "", "m.x_f__mutmut_", "__mutmut_3", "m.x_f__mutmut_3a"):
        assert mutant_of(name) == (None, None), name


def test_a_mutants_own_killers_go_first_then_this_runs_latest_then_the_seeded_ones():
    from support.mutmut_killers import priority

    kills = [(1, "t::a"), (2, "t::b"), (3, "t::a"), (4, "t::c"), (None, "t::old")]
    seeded = {"s::z": [9], "t::b": [7], "s::y": [7, 8]}
    assert priority(kills, seeded, 5) == {"t::old": 0, "t::c": 1, "t::a": 2, "t::b": 3, "s::z": 4, "s::y": 5}
    assert priority(kills, seeded, 7) == {"t::b": 0, "s::y": 1, "t::old": 2, "t::c": 3, "t::a": 4, "s::z": 5}
    assert priority(kills, seeded, 3) == {"t::a": 0, "t::old": 1, "t::c": 2, "t::b": 3, "s::z": 4, "s::y": 5}
    assert priority(kills, seeded, None) == priority(kills, seeded, 5)
    assert priority([], {"s::z": [], "s::y": [1]}, 1) == {"s::y": 0, "s::z": 1}
    assert priority([], {}, 1) == {}


def test_the_stats_and_the_seed_are_read_once_per_version_of_their_file(tmp_path):
    """mutmut forks every mutant's session from its main process: the module keeps what it read, and a file that
    changes (mutmut writes its stats after the first reads) is read again."""

    from support import mutmut_killers as mk

    stats = tmp_path / mk.STATS
    assert mk.stats_seconds(stats) == {} and mk.module_seconds(stats) == {}
    stats.write_text(json.dumps({"duration_by_test": {"a.py::t": 1.0, "a.py::u": 3.0}}))
    assert mk.stats_seconds(stats) == {"a.py::t": 1.0, "a.py::u": 3.0} and mk.module_seconds(stats) == {"a.py": 2.0}
    assert mk.stats_seconds(stats) is mk.stats_seconds(stats)  # read once
    stats.write_text("not json")
    os.utime(stats, ns=(0, 1))
    assert mk.stats_seconds(stats) == {}
    seed = tmp_path / mk.SEED
    seed.write_text("m.f t::a\t1\n")
    assert mk.seeded(seed) == {"m.f": {"t::a": [1]}} and mk.seeded(seed) is mk.seeded(seed)
    seed.write_text("m.f t::b\t2,3\n")
    os.utime(seed, ns=(0, 2))
    assert mk.seeded(seed) == {"m.f": {"t::b": [2, 3]}}


def test_the_dear_mutants_are_the_killed_ones_at_or_over_the_threshold():
    """Only mutmut's kills (exit status 1) count: a survivor, a timeout or a mutant the type checker caught has no
    killer to replace."""
    from support.cheaper_killers import dear_mutants

    codes = {"m.f__mutmut_1": 1, "m.f__mutmut_2": 1, "m.f__mutmut_3": 0, "m.f__mutmut_4": -24, "m.f__mutmut_5": 37,
             "m.f__mutmut_6": 1}
    seconds = {"m.f__mutmut_1": 0.5, "m.f__mutmut_2": 0.25, "m.f__mutmut_3": 9.0, "m.f__mutmut_4": 9.0,
               "m.f__mutmut_5": 9.0, "m.f__mutmut_6": 0.2499}
    metas = [{"exit_code_by_key": codes, "durations_by_key": seconds},
             {"exit_code_by_key": {"m.g__mutmut_1": 1}, "durations_by_key": {}}, {}]
    assert dear_mutants(metas, 0.25) == {"m.f__mutmut_1": 0.5, "m.f__mutmut_2": 0.25}
    assert dear_mutants(metas, 10) == {}


def test_the_candidates_are_the_other_tests_cheapest_first_within_the_mutants_time():
    from support.cheaper_killers import candidates

    seconds = {"t::killer": 0.01, "t::a": 0.3, "t::b": 0.1, "t::c": 0.1, "t::d": 0.05, "t::e": 2.0}
    tests = ["t::a", "t::b", "t::c", "t::d", "t::e", "t::killer", "t::unknown"]
    assert candidates(tests, seconds, "t::killer", 1.0) == ["t::d", "t::b", "t::c", "t::a"]  # 0.55 s together
    assert candidates(tests, seconds, "t::killer", 0.25) == ["t::d", "t::b"]  # a third would reach 0.25
    assert candidates(tests, seconds, "t::killer", 0.05) == []
    assert candidates(["t::killer", "t::unknown"], seconds, "t::killer", 9.0) == []


def test_a_mutants_own_killer_is_the_one_its_session_tries_first():
    from support.cheaper_killers import own_killer

    seed = {"m.f": {"s::a": [1, 2], "s::b": [2, 3]}}
    record = [(2, "r::x"), (3, "r::y"), (2, "r::z")]
    assert own_killer(seed, record, "m.f", 2) == "r::z"  # this run's latest kill of it
    assert own_killer(seed, [], "m.f", 2) == "s::a"  # the seed's first
    assert own_killer(seed, record, "m.f", 1) == "s::a"
    assert own_killer(seed, record, "m.f", 4) is None  # no test known to kill it
    assert own_killer({}, [], "m.g", 1) is None


def test_an_adopted_killer_becomes_the_mutants_only_own_killer_and_the_rest_keep_their_place():
    from support.cheaper_killers import adopted
    from support.mutmut_killers import priority

    seed = {"m.f": {"s::a": [1, 2], "s::b": [2, 3], "s::c": [2]}, "m.g": {"s::a": [2]}}
    fresh = adopted(seed, "m.f", 2, "t::new")
    assert fresh == {"m.f": {"s::a": [1], "s::b": [3], "s::c": [], "t::new": [2]}, "m.g": {"s::a": [2]}}
    assert list(priority([], fresh["m.f"], 2)) == ["t::new", "s::a", "s::b", "s::c"]
    assert seed["m.f"] == {"s::a": [1, 2], "s::b": [2, 3], "s::c": [2]}  # the given seed is left as it was
    assert adopted(seed, "m.f", 3, "s::a")["m.f"] == {"s::a": [1, 2, 3], "s::b": [2], "s::c": [2]}
    assert adopted({}, "m.h", 7, "t::x") == {"m.h": {"t::x": [7]}}


def test_known_killers_then_cheap_tests_then_modules_cheapest_first():
    """A mutant's tests under mutmut: its function's known killers in their rank, then every test under
    CHEAP_SECONDS (ahead of a cheaper module's slow tests), then module by module; tests with no figure, modules
    with none and the module named last go to the end; ties keep the order they came in."""
    from support.mutmut_killers import CHEAP_SECONDS, module_means, run_order

    seconds = {"a.py::slow": 4.0, "a.py::unit": CHEAP_SECONDS / 10, "a.py::unit2": CHEAP_SECONDS / 10,
               "b.py::mid": 0.5, "b.py::edge": CHEAP_SECONDS, "c.py::fault": 0.0, "b.py::killer": 3.0}  # fmt: skip
    assert module_means(seconds)["a.py"] == (4.0 + CHEAP_SECONDS / 5) / 3
    tests = [("c.py::fault", "c.py", 1), ("a.py::slow", "a.py", 1), ("b.py::mid", "b.py", 1), ("b.py::edge", "b.py", 2),
             ("a.py::unit2", "a.py", 3), ("a.py::unit", "a.py", 3), ("d.py::new", "d.py", 1), ("b.py::killer", "b.py", 3)]  # fmt: skip
    order = run_order(tests, {"b.py::killer": 0}, seconds, module_means(seconds), last="c.py")
    assert sorted(order, key=order.get) == ["b.py::killer", "a.py::unit2", "a.py::unit", "b.py::mid", "b.py::edge",
                                            "a.py::slow", "d.py::new", "c.py::fault"]  # fmt: skip


# --- a mutant's code read from its own lines (gpt2core.mutation.function_node) --------------------------------------

MUTATED_MODULE = '''\
import functools


def x_f__mutmut_1(
    a,
    b,
) -> int:
    c = a + b
# a comment at column 0 inside the function
    return c


def x_p__mutmut_1(a):
    return (a +
a)  # a line at column 0 inside brackets


class Box:
    def xǁBoxǁget__mutmut_1(self):
        """A docstring whose lines keep their indentation.
        second line"""
        return 1

    def xǁBoxǁput__mutmut_1(self):
        """A docstring with a line at column 0:
done"""
        return 2


@functools.cache
def x_g__mutmut_1():
    return 3


def x_h__mutmut_1(x):
    return x \\
+ 1


async def x_k__mutmut_1():
    return 4


def x_twice__mutmut_1():
    return 5


def x_twice__mutmut_1():
    return 6
'''


def test_a_functions_own_lines_give_the_stamp_of_the_whole_modules_parse(tmp_path):
    """The fast path (the function's lines parsed alone) gives the stamp the whole module's parse gives; where
    the lines cannot be cut out alone (a decorator, a line at column 0 inside a string, brackets or after a
    continued line, the name defined twice) it gives no node and code_stamps parses the whole module."""
    import ast

    from gpt2core.mutation import code_stamps, function_node, function_stamp

    whole = {node.name: function_stamp(node) for node in ast.walk(ast.parse(MUTATED_MODULE)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    alone = {"x_f__mutmut_1", "xǁBoxǁget__mutmut_1", "x_k__mutmut_1"}
    assert {name for name in whole if function_node(MUTATED_MODULE, name) is not None} == alone
    for name in alone:
        assert function_stamp(function_node(MUTATED_MODULE, name)) == whole[name], name
    source = tmp_path / "mutants" / "src" / "m.py"
    source.parent.mkdir(parents=True)
    source.write_text(MUTATED_MODULE, encoding="utf-8")
    stamps = code_stamps([tmp_path], [f"m.{name}" for name in whole])
    assert stamps == {f"m.{name}": stamp for name, stamp in whole.items()}  # x_twice: the later def, as ast.walk has it
    edited = MUTATED_MODULE.replace("    return c\n", "    return -c\n")
    assert function_stamp(function_node(edited, "x_f__mutmut_1")) != whole["x_f__mutmut_1"]  # the line after the comment counts


def without_mutmut_variables() -> dict:
    """This process's environment without the variables of the mutmut or xdist session running these tests."""
    return {k: v for k, v in os.environ.items() if k not in ("MUTANT_UNDER_TEST", "PYTEST_XDIST_WORKER")}


def run_pytest_script(tmp_path, source: str, *args: str) -> dict:
    """`source` run as a script in a fresh interpreter at the repository root (where tests/conftest.py is the
    rootdir's), without this session's mutmut or xdist variables; what its last line prints, read as JSON."""
    script = tmp_path / "script.py"
    script.write_text(source)
    env = without_mutmut_variables()
    done = subprocess.run([sys.executable, str(script), *args], cwd=Path(__file__).resolve().parents[2], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


CLEAN_RUN_AFTER_STATS = """
import json, os, sys
import pytest

first, second = sys.argv[1:3]
quiet = ["-q", "-p", "no:cacheprovider"]
os.environ["MUTANT_UNDER_TEST"] = "stats"  # mutmut's stats pass, then its clean run, in one process
assert pytest.main([*quiet, first]) == 0


class Seen:
    skipped, ran = {}, []

    def pytest_runtest_logreport(self, report):
        if report.skipped:
            Seen.skipped[report.nodeid] = report.longrepr[2]
        elif report.when == "call":
            Seen.ran.append(report.nodeid)


os.environ["MUTANT_UNDER_TEST"] = ""
exit_code = pytest.main([*quiet, first, second], plugins=[Seen()])
print(json.dumps({"exit": int(exit_code), "skipped": Seen.skipped, "ran": Seen.ran}))
"""


def test_mutmuts_clean_run_skips_only_the_tests_its_stats_pass_saw_pass(tmp_path):
    """mutmut's clean run follows its stats pass in the same process, on the same code: tests/conftest.py skips there
    exactly the tests that the stats pass saw pass; one the stats pass did not run runs."""
    first = "tests/engine/test_loading.py::test_scaled_atol_scales_by_max_abs_with_a_floor_of_one"
    second = "tests/engine/test_mutation_score.py::test_all_killed_passes"
    seen = run_pytest_script(tmp_path, CLEAN_RUN_AFTER_STATS, first, second)
    assert seen["exit"] == 0, seen
    assert seen["skipped"] == {first: "Skipped: passed in this mutmut process's stats pass, on the same code"}, seen
    assert seen["ran"] == [second], seen


@pytest.mark.parametrize("mutant, status", [("gpt2core.no_function__mutmut_1", 1), ("stats", 4), (None, 4)])
def test_a_mutants_session_whose_node_ids_name_nothing_ends_as_a_kill_at_once(mutant, status):
    """A node id that names nothing is pytest's usage error (status 4), on which mutmut raises; under a mutant
    (tests/conftest.py) the session ends there with status 1, mutmut's kill, instead of through that exception,
    before pytest says what it did not find."""
    env = without_mutmut_variables()
    env.update({"MUTANT_UNDER_TEST": mutant} if mutant else {})
    node_id = "tests/engine/test_mutation_score.py::test_no_such_test"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node_id],
                          cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == status, done.stdout[-2000:] + done.stderr[-2000:]
    assert ("not found: " in done.stdout + done.stderr) == (status == 4), done.stdout[-2000:] + done.stderr[-2000:]


def test_a_mutants_session_names_the_test_functions_it_collects():
    from support.mutmut_killers import wanted_functions

    assert wanted_functions(["tests/a.py::test_f[x-1]", "tests/a.py::test_f[x-2]", "tests/b.py::test_g"]) == {
        ("tests/a.py", "test_f"), ("tests/b.py", "test_g")}
    assert wanted_functions(["tests/a.py::test_f[a::b]"]) == {("tests/a.py", "test_f")}  # "::" inside an id
    for whole in ([], ["tests/"], ["tests/a.py"], ["tests/a.py::test_f", "tests/b.py"], ["tests/a.py::"],
                  ["tests/a.py::TestC::test_m"]):
        assert wanted_functions(whole) is None, whole


COLLECTED_UNDER_A_MUTANT = """
import json, os, sys
import pytest

os.environ["MUTANT_UNDER_TEST"] = sys.argv[1]


class Seen:
    generated = set()  # the test functions whose items pytest made (pytest asks for each one's parametrization)

    def pytest_generate_tests(self, metafunc):
        Seen.generated.add(metafunc.definition.nodeid.split("[")[0])


exit_code = pytest.main(["-q", "-p", "no:cacheprovider", "--co", *sys.argv[2:]], plugins=[Seen()])
print(json.dumps({"exit": int(exit_code), "generated": sorted(Seen.generated)}))
"""


@pytest.mark.parametrize("mutant, collects_all", [("gpt2core.no_function__mutmut_1", False), ("stats", True)])
def test_under_a_mutant_only_the_named_test_functions_are_collected(tmp_path, mutant, collects_all):
    """Under a mutant, a module's test functions that no node id names are not collected (tests/conftest.py); the
    stats pass, which names a whole module here, collects every test of it."""
    module = "tests/engine/test_mutation_score.py"
    named = f"{module}::test_timeouts_are_not_kills_and_fail_the_gate"
    args = [named, f"{module}::test_all_killed_passes"] if not collects_all else [module]
    seen = run_pytest_script(tmp_path, COLLECTED_UNDER_A_MUTANT, mutant, *args)
    assert seen["exit"] == 0, seen
    if collects_all:
        assert named in seen["generated"] and len(seen["generated"]) > 15, seen
    else:
        assert seen["generated"] == sorted(args), seen


# --- mutmut's main process in huge pages before it forks (tests/support/huge_pages.py) -----------------------------


def test_only_writable_anonymous_mappings_are_collapsed_trimmed_to_whole_huge_pages():
    from support.huge_pages import HUGE_PAGE, anonymous_ranges

    maps = "\n".join([
        "55d0c0000000-55d0c0a00000 rw-p 00000000 00:00 0                          [heap]",
        "7f0000100000-7f0000700000 rw-p 00000000 00:00 0 ",  # unnamed: trimmed to [2 MiB, 6 MiB)
        "7f0001000000-7f0001100000 rw-p 00000000 00:00 0 ",  # 1 MiB: no whole huge page in it
        "7f0002000000-7f0002400000 r--p 00000000 00:00 0 ",  # not writable
        "7f0003000000-7f0003400000 rw-p 00001000 08:01 1234                       /usr/lib/libtorch_cpu.so",
        "7ffd00000000-7ffd00400000 rw-p 00000000 00:00 0                          [stack]",
        "garbage",
    ])  # fmt: skip
    assert anonymous_ranges(maps) == [(0x55D0C0000000, 0x55D0C0A00000), (0x7F0000200000, 0x7F0000600000)]
    assert all(low % HUGE_PAGE == 0 and high % HUGE_PAGE == 0 for low, high in anonymous_ranges(maps))


def test_collapsing_this_process_changes_no_value_it_holds():
    """The collapse copies pages into huge ones in place: what a test held before reads the same after."""
    import numpy as np
    from support.huge_pages import collapse_into_huge_pages

    held = np.random.default_rng(0).standard_normal(3 << 20)  # 24 MiB: whole huge pages inside it
    before = held.copy()
    assert collapse_into_huge_pages() >= 0
    np.testing.assert_array_equal(held, before)


# --- mutmut's stats pass on two processes (tests/support/stats_on_two_cores.py) -----------------------------------

STATS_PASS = """
import json, os, sys, time
import pytest
from mutmut.state import state

os.environ["MUTANT_UNDER_TEST"] = "stats"
os.environ["STATS_PASS_PID"] = str(os.getpid())


class Recorder:  # as mutmut's stats plugin: what each test reached, its call's seconds
    def pytest_runtest_logstart(self, nodeid, location):
        state().duration_by_test[nodeid] = 0

    def pytest_runtest_teardown(self, item, nextitem):
        state().tests_by_mangled_function_name["reached_by_all"].add(item.nodeid)
        state().tests_by_mangled_function_name[f"pid{os.getpid()}"].add(item.nodeid)
        state().function_dependencies["reached_by_all"].add(item.nodeid)

    def pytest_runtest_makereport(self, item, call):
        if call.when == "call":
            state().duration_by_test[item.nodeid] += 1.0


exit_code = pytest.main(["-q", "-x", "-p", "no:cacheprovider", *sys.argv[1:]], plugins=[Recorder()])
from support import mutmut_killers  # the conftest's module (its directory is on sys.path once pytest loaded it)

by = state().tests_by_mangled_function_name
print(json.dumps({"exit": int(exit_code), "reached": sorted(by["reached_by_all"]),
                  "processes": sorted(len(v) for k, v in by.items() if k.startswith("pid")),
                  "callers": sorted(state().function_dependencies["reached_by_all"]),
                  "durations": state().duration_by_test, "passed": sorted(mutmut_killers.passed_in_stats)}))
"""


def write_test_modules(directory, failing_in_the_fork: bool = False):
    """tests/ of three modules of two 0.2 s tests each under directory (beside a copy of this suite's conftest and
    support); with failing_in_the_fork, every test fails in any process but the stats pass's first. Their node ids."""
    import shutil

    tests = directory / "tests"
    shutil.copytree(Path(__file__).resolve().parents[1] / "support", tests / "support")
    shutil.copy(Path(__file__).resolve().parents[1] / "conftest.py", tests / "conftest.py")
    check = "\n    assert os.getpid() == int(os.environ['STATS_PASS_PID']), 'the failure the fork reports'" if failing_in_the_fork else ""
    ids = []
    for module in ("test_a", "test_b", "test_c"):
        body = "".join(f"def test_{n}():\n    time.sleep(0.2){check}\n\n\n" for n in ("one", "two"))
        (tests / f"{module}.py").write_text("import os\nimport time\n\n\n" + body)
        ids += [f"tests/{module}.py::test_one", f"tests/{module}.py::test_two"]
    return ids


def run_stats_pass(tmp_path, failing_in_the_fork=False):
    ids = write_test_modules(tmp_path, failing_in_the_fork)
    script = tmp_path / "stats.py"
    script.write_text(STATS_PASS)
    env = without_mutmut_variables()
    done = subprocess.run([sys.executable, str(script), "tests"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ids, json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


TWO_CORES = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: the stats pass stays in one process")


@TWO_CORES
def test_the_stats_pass_on_two_processes_records_what_one_process_would(tmp_path):
    """Every test recorded once, as mutmut's plugin and the conftest record it in one process; both processes ran
    tests, each a whole module at a time."""
    ids, seen, _ = run_stats_pass(tmp_path)
    assert seen["exit"] == 0, seen
    assert seen["reached"] == seen["callers"] == seen["passed"] == sorted(ids), seen
    assert seen["durations"] == {i: 1.0 for i in ids}, seen
    assert len(seen["processes"]) == 2 and sum(seen["processes"]) == 6 and all(n % 2 == 0 for n in seen["processes"]), seen


@TWO_CORES
def test_a_failure_in_the_stats_pass_fork_fails_the_pass_and_is_printed(tmp_path):
    _, seen, out = run_stats_pass(tmp_path, failing_in_the_fork=True)
    assert seen["exit"] == 1, seen
    assert "Failed in the stats pass's second process" in out and "the failure the fork reports" in out, out[-3000:]
    assert len(seen["passed"]) < 6, seen
