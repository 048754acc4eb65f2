"""`gpt2core mutation-score` on mutmut result files written here: strict counting, gating, shard merging."""

from __future__ import annotations

import json

import pytest

from gpt2core.cli import main
from gpt2core.mutation import MutationResultsError, merge, read_run


def write_run(root, codes: dict, module="src/gpt2core/ops.py"):
    meta = root / "mutants" / (module + ".meta")
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {}}))
    return root


def score_json(capsys, *args):
    rc = main(["mutation-score", "--json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_all_killed_passes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(write_run(tmp_path, {f"m{i}": 1 for i in range(20)}))
    rc, r = score_json(capsys)
    assert rc == 0 and r["score"] == 1.0 and r["killed"] == r["total"] == 20


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
    rc, r = score_json(capsys)
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
