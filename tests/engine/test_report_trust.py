"""A verdict an engine author can trust at a glance: the headline says what ran, the first divergence is the
earliest in forward order over every case and mode, JUnit says what the verdict says, references are captured
once and reused, and the conformance suite never hides examples its subject could not run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.models import engine_model

from gpt2core.cli import main
from gpt2core.report import collapse, format_verify, write_junit
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.verify import verify_references


class Broken:
    """gpt2core's engine with one checkpoint spoiled on one case, and one case it says it cannot run."""

    capabilities = frozenset()
    name = "broken"

    def __init__(self, model, spoil: dict, cannot_run=("padded_batch",), provides=None):
        self.inner, self.spoil, self.cannot_run = NumpySubject(model), spoil, cannot_run
        if provides is not None:
            self.provides = provides

    def can_run(self, case):
        return "the test says so" if case.name in self.cannot_run else None

    def checkpoints(self, case):
        out = dict(self.inner.checkpoints(case))
        for name in self.spoil.get(case.name, ()):
            out[name] = out[name] + 1e-3
        return out


@pytest.fixture(scope="module")
def tiny64(tiny_dir, tmp_path_factory):
    from support.references import reference_set

    return engine_model(tiny_dir, np.float64), reference_set(tiny_dir, np.float64, tmp_path_factory)


def junit_of(run, tmp_path, group="checkpoint"):
    from junitparser import JUnitXml

    write_junit({"runs": [run]}, tmp_path / "junit.xml", group=group)
    cases = [c for suite in JUnitXml.fromfile(str(tmp_path / "junit.xml")) for c in suite]
    (verdict,) = [c for c in cases if c.name == "verdict"]  # the run's verdict as a testcase: failed unless PASS
    assert bool(verdict.result) == (run["verdict"] != "PASS"), (run["verdict"], verdict.result)
    cases.remove(verdict)
    kinds = lambda kind: [c for c in cases if c.result and type(c.result[0]).__name__ == kind]  # noqa: E731
    return cases, kinds("Failure"), kinds("Skipped")


def test_the_first_divergence_is_the_earliest_in_forward_order_over_every_case(tiny64):
    """h1.attn_heads fails on the first case, h0.attn_probs on a later one: the earlier checkpoint is named."""
    model, refs = tiny64
    run = verify_references(Broken(model, {"one_token": ["h1.attn_heads"], "sentence": ["h0.attn_probs"]}), refs)
    fd = run["first_divergence"]
    assert (fd["name"], fd["case"], fd["mode"]) == ("h0.attn_probs", "sentence", "chained"), fd
    assert {c: d["name"] for c, d in run["first_per_case"].items()} == {"one_token": "h1.attn_heads", "sentence": "h0.attn_probs"}


def test_headline_table_first_divergence_and_junit_agree(tiny64, tmp_path):
    """One case not run, one checkpoint failing: every output says so, and JUnit fails."""
    model, refs = tiny64
    run = verify_references(Broken(model, {"hello": ["h1.mlp_out"]}), refs)
    assert run["verdict"] == "FAIL" and run["cases_not_run"] == {"padded_batch": "the test says so"}
    text = format_verify({"verdict": run["verdict"], "runs": [run]})
    headline = text.splitlines()[0]
    assert headline.startswith("float64: FAIL - subject broken") and "cases run: one_token, hello, sentence, random_tokens;" in headline
    assert "NOT RUN: padded_batch (the test says so)" in headline and "padded_batch," not in headline.split("NOT RUN")[0]
    assert "verified" not in text and "compared 31 of 31 checkpoints (30 passed) over 4 of 5 cases" in text
    assert "worst margin" in text and "(h1.mlp_out, case hello)" in text
    row = next(line for line in text.splitlines() if line.startswith("h1.mlp_out "))
    assert row.endswith("hello  <-- FAIL")
    assert "first divergence (earliest in forward order over every case and mode): h1.mlp_out (case hello, chained)" in text
    cases, failures, skipped = junit_of(run, tmp_path)
    assert [(c.classname, c.name) for c in failures] == [("float64.hello", "h1.mlp_out")]
    assert sorted(c.name for c in skipped) == ["case padded_batch", "mode cached", "mode generate", "mode isolated", "mode sampled"]
    for group, name in (("kind", "mlp_out"), ("case", "hello")):
        _, failures, _ = junit_of(run, tmp_path, group)
        assert [c.name for c in failures] == [name], group


def test_the_largest_difference_is_named_with_its_case(tiny64):
    model, refs = tiny64
    run = verify_references(Broken(model, {"sentence": ["logits"]}, cannot_run=()), refs)
    assert run["max_abs_at"] == {"name": "logits", "case": "sentence"} and run["max_abs"] == pytest.approx(1e-3, rel=1e-6)
    assert run["worst_margin_at"] == {"name": "logits", "case": "sentence"}
    row = next(r for r in run["checkpoints"] if r["name"] == "logits")
    assert row["chained"]["case"] == "sentence" and row["chained"]["margin"] == run["worst_margin"]


def test_a_checkpoint_passes_only_if_every_mode_passed_it_and_is_waived_only_if_it_passes(tiny_dir, tiny64):
    """The run's counts: the logits off in the cached mode only are compared and not passed; a checkpoint
    declared off within its deviation is passed and counted WAIVED, the others passed and not waived."""
    from support.verdict_subjects import spoiled_step, waived

    _, refs = tiny64
    counts = ("checkpoints_total", "checkpoints_compared", "checkpoints_passed", "checkpoints_waived")
    step = verify_references(spoiled_step(tiny_dir, "float64"), refs)
    n = step["checkpoints_total"]
    logits = next(r for r in step["checkpoints"] if r["name"] == "logits")
    assert logits["chained"]["ok"] and not logits["cached"]["ok"] and not logits["ok"]
    assert tuple(step[k] for k in counts) == (n, n, n - 1, 0), step["reasons"]
    run = verify_references(waived(tiny_dir, "float64"), refs)
    assert run["verdict"] == "PASS" and tuple(run[k] for k in counts) == (n, n, n, 1), run["reasons"]


def test_under_require_all_what_is_missing_fails_in_junit(tiny64, tmp_path):
    """A logits-only subject: one skipped testcase per kind not provided, not one per checkpoint and case; under
    --require all each is a failure, so a CI reading JUnit alone sees INCOMPLETE as red."""
    model, refs = tiny64
    subject = Broken(model, {}, cannot_run=(), provides=frozenset({"logits"}))
    for require, verdict in (("offered", "PASS"), ("all", "INCOMPLETE")):
        run = verify_references(subject, refs, require=require)
        assert run["verdict"] == verdict
        cases, failures, skipped = junit_of(run, tmp_path)
        missing = failures if require == "all" else skipped
        assert len(cases) == 5 + 4 + 16 and len(missing) == 4 + 16  # logits x 5 cases; 4 modes; 16 kinds not provided
        assert (not skipped) if require == "all" else (not failures)
        assert "not provided: attn_scores (h0-h1)" in {c.name for c in missing}
    assert collapse(["embeddings", "h0.q", "h1.q", "h3.q", "logits"]) == ["embeddings", "q (h0-h1, h3)", "logits"]


def test_a_second_verify_captures_nothing_and_a_changed_version_is_a_miss(tiny_dir, tmp_path, monkeypatch, capsys):
    from gpt2core.verification import reference_cache, reference_set

    monkeypatch.setenv("GPT2CORE_HOME", str(tmp_path / "home"))
    # This test's cache is its own (a temporary home), so it is written as outside mutmut whatever runs this process:
    # under a mutant, verify keeps its references private (running_a_mutant), and this test failed for every mutant
    # it was selected for, whatever the mutant changed (2,461 false kills before this line; docs/mutation.md)
    monkeypatch.setattr(reference_cache, "running_a_mutant", lambda: False)
    assert main(["verify", "--model", str(tiny_dir), "--dtype", "float64"]) == 0
    capsys.readouterr()
    (entry,) = reference_cache.entries(reference_cache.cache_root())
    assert entry["dtype"] == "float64" and entry["cases"][-1] == "padded_batch"

    def no_capture(*args, **kwargs):
        raise AssertionError("captured again")

    monkeypatch.setattr(reference_set, "write_references", no_capture)
    monkeypatch.setattr(reference_cache, "write_references", no_capture)
    assert main(["verify", "--model", str(tiny_dir), "--dtype", "float64", "--json"]) == 0  # a hit: no capture
    assert json.loads(capsys.readouterr().out)["runs"][0]["references"] == entry["path"]
    real = reference_cache.installed
    monkeypatch.setattr(reference_cache, "installed", lambda p: "9.9" if p == "transformers" else real(p))
    with pytest.raises(AssertionError, match="captured again"):  # another transformers: a miss
        main(["--debug", "verify", "--model", str(tiny_dir), "--dtype", "float64"])
    assert main(["cache", "clear"]) == 0 and not reference_cache.entries(reference_cache.cache_root())


def test_the_cache_keeps_to_its_cap_least_recently_used_first(tmp_path, monkeypatch):
    from gpt2core.verification import reference_cache

    root = tmp_path / "cache"
    for i, name in enumerate(["old", "middle", "new"]):
        d = root / "references" / name
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({"model": {"path": "m"}, "dtype": "float32", "cases": []}))
        (d / "data.npy").write_bytes(b"x" * 1000)
        (d / reference_cache.USED).write_text(f"{100 + i}\n")
    assert [e["path"].rsplit("/", 1)[1] for e in reference_cache.entries(root)] == ["old", "middle", "new"]
    removed = reference_cache.trim(root, keep=root / "references" / "old", cap=2500)
    assert [p.rsplit("/", 1)[1] for p in removed] == ["middle"]  # old is kept (just used), new fits
    monkeypatch.setenv("GPT2CORE_REFERENCE_CACHE_GB", "x")
    with pytest.raises(ValueError, match="GPT2CORE_REFERENCE_CACHE_GB='x'"):
        reference_cache.cap_bytes()


def test_references_without_model_use_the_sets_own_record_or_refuse(tiny_dir, tiny64, tmp_path, capsys):
    _, refs = tiny64
    assert main(["verify", "--references", str(refs.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == str(tiny_dir.resolve())
    moved = tmp_path / "refs"
    import shutil

    shutil.copytree(refs.root, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["model"]["path"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", "--references", str(moved)]) == 2
    err = capsys.readouterr().err
    assert "was made for the model in" in err and "give --model DIR" in err and len(err.strip().splitlines()) == 1


def test_an_adapter_in_the_current_directory_and_its_declared_dtypes(tiny_dir, tmp_path, monkeypatch, capsys):
    """`--subject mymod:make` finds ./mymod.py; a factory that declares its dtypes gets only those references."""
    import sys

    (tmp_path / "mymod.py").write_text(
        "from gpt2core.verification.numpy_subject import numpy_subject\n"
        "def make(model_dir, dtype):\n    return numpy_subject(model_dir, dtype)\n"
        "make.dtypes = ('float64',)\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["verify", "--model", str(tiny_dir), "--subject", "mymod:make", "--json"]) == 0
    assert [r["dtype"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["float64"]
    assert main(["verify", "--model", str(tiny_dir), "--subject", "mymod:make", "--dtype", "float32"]) == 2
    assert "declares float64 only" in capsys.readouterr().err
    assert main(["verify", "--model", str(tiny_dir), "--subject", "nomod:make"]) == 2
    assert "importable from the current directory" in capsys.readouterr().err


def conformance(factory: str, marks: str, examples: int = 12):
    from support.inprocess import run_pytest
    from support.models import CACHE

    return run_pytest(["--pyargs", "gpt2core.conformance", "-q", "-p", "no:cacheprovider", "-m", marks,
                       "--gpt2core-subject", factory, "--gpt2core-dtype", "float64", "--gpt2core-cache", str(CACHE),
                       "--gpt2core-examples", str(examples)])  # fmt: skip


def test_the_conformance_suite_runs_every_example_on_a_subject_without_padding():
    """A subject that runs one row at a time and no padding: the drawn tests draw only inputs it can run (and
    would fail, saying how many ran, if it could not run one); batch and padding invariants are skipped for want
    of the capability before anything is drawn."""
    ret, outcome = conformance("support.layouts:make_unpadded", "property or invariants")
    failures = "\n".join(r.longreprtext[-3000:] for r in outcome.failed + outcome.errors)
    assert ret == pytest.ExitCode.OK and not failures, failures
    passed = {r.nodeid.split("::")[-1].split("[")[0] for r in outcome.passed}
    assert {"test_drawn_model_matches_transformers", "test_changing_future_tokens_never_changes_earlier_outputs"} <= passed


def test_a_drawn_test_whose_subject_refuses_some_examples_fails_saying_how_many_ran():
    ret, outcome = conformance("support.layouts:make_short_only", "property")
    assert ret == pytest.ExitCode.TESTS_FAILED and len(outcome.failed) == 1
    text = outcome.failed[0].longreprtext
    assert "the differential test: the subject ran" in text and "x longer than 4 tokens)" in text, text[-2000:]


def test_a_changed_weights_file_is_another_key(tiny_dir, tmp_path):
    import shutil

    from gpt2core.verification.cases import Case
    from gpt2core.verification.reference_cache import content_key

    copy = tmp_path / "m"
    shutil.copytree(tiny_dir, copy)
    cases = [Case("c", np.array([[1, 2, 3]]))]
    assert content_key(copy, "float64", cases) == content_key(tiny_dir, "float64", cases)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    weights.write_bytes(bytes(data))
    assert content_key(copy, "float64", cases) != content_key(tiny_dir, "float64", cases)
    assert content_key(tiny_dir, "float32", cases) != content_key(tiny_dir, "float64", cases)
    assert content_key(tiny_dir, "float64", [Case("c", np.array([[1, 2, 4]]))]) != content_key(tiny_dir, "float64", cases)


def test_verify_model_as_the_readme_calls_it_uses_its_documented_defaults(tiny_dir):
    """`verify_model(path)` (README, "Verify your own engine"): gpt2core's engine in both dtypes, on the built-in
    cases (no full-length case), references from the cache, require "offered"."""
    from gpt2core.verification.cases import cases_for
    from gpt2core.verification.model_dir import read_model_dir
    from gpt2core.verification.reference_cache import cache_root
    from gpt2core.verification.verify import verify_model

    report = verify_model(tiny_dir)
    assert report["verdict"] == "PASS" and [r["dtype"] for r in report["runs"]] == ["float32", "float64"]
    built_in = [c.name for c in cases_for(read_model_dir(tiny_dir))]
    for run in report["runs"]:
        assert run["subject"].startswith("gpt2core") and run["cases"] == built_in and run["require"] == "offered"
        assert run["references"].startswith(str(cache_root() / "references"))  # cached, not "(temporary, ...)"


def test_verify_model_runs_the_prompts_it_is_given_and_sizes_memory_for_the_dtypes_it_runs(tiny_dir, tmp_path_factory):
    """prompts= make the cases (one per prompt; full_length adds one of every position); with reference sets given,
    the memory plan is for the dtypes those sets hold among the ones asked (float32 weights here, not float64's)."""
    from support.references import short_reference_set

    from gpt2core.engine.config import GPT2Config
    from gpt2core.verification.memory import weights_bytes
    from gpt2core.verification.verify import verify_model

    report = verify_model(tiny_dir, dtypes=["float64"], prompts=["Hello there"])
    assert [r["cases"] for r in report["runs"]] == [["prompt0"]]
    report = verify_model(tiny_dir, dtypes=["float64"], prompts=["Hello there"], full_length=True)  # n_positions 128
    assert [r["cases"] for r in report["runs"]] == [["prompt0", "full_128"]]
    refs = short_reference_set(tiny_dir, np.float32, tmp_path_factory)  # any set: the short cases cost least
    report = verify_model(tiny_dir, dtypes=("float32", "float64"), reference_dirs=[refs.root])
    config = GPT2Config.from_json_file(tiny_dir / "config.json")
    assert [r["dtype"] for r in report["runs"]] == ["float32"]
    assert report["memory"]["weights_bytes"] == weights_bytes(config, np.float32)


def test_a_case_the_subject_cannot_run_first_leaves_the_cases_after_it_run(tiny64):
    """The first case refused: it is listed as not run with its reason, and every case after it still runs."""
    model, refs = tiny64
    run = verify_references(Broken(model, {}, cannot_run=(refs.cases[0].name,)), refs)
    assert run["cases_not_run"] == {refs.cases[0].name: "the test says so"}, run["cases_not_run"]
    assert run["cases_run"] == [c.name for c in refs.cases[1:]] and run["verdict"] == "PASS", (run["cases_run"], run["reasons"])
    assert {r["case"] for row in run["checkpoints"] for r in row["results"]} == set(run["cases_run"])


class Off:
    """gpt2core's engine off in one mode: its logits by 1e-9 relative in cached decoding or its isolated stage
    (beyond float64's fixed 1e-12), or its sampled scores by 1e-5 relative (beyond the 2.4e-7 of float32 rounding
    that SAMPLE_SCORES_TOL allows a float64 engine); all well within 1e-3."""

    name = "off"

    def __init__(self, model, mode: str):
        capability = {"cached": "decode", "isolated": "stages", "sampled": "sample"}[mode]
        self.inner, self.capabilities = NumpySubject(model), frozenset({capability})

    def checkpoints(self, case):
        return self.inner.checkpoints(case)

    def decode(self, case, split):
        for rec in self.inner.decode(case, split):
            yield {**rec, "logits": rec["logits"] * (1 + 1e-9)}

    def stage(self, name, case, ref):
        got = self.inner.stage(name, case, ref)
        return got * (1 + 1e-9) if name == "logits" else got

    def sample_scores(self, case, settings, path_ids):
        return {k: s * (1 + 1e-5) for k, s in self.inner.sample_scores(case, settings, path_ids).items()}


@pytest.mark.parametrize(("mode", "loosened"), [
    ("cached", "floor"), ("cached", "budget"), ("isolated", "floor"), ("isolated", "budget"),
    ("sampled", "budget"),  # sampled scores have their own floor (SAMPLE_SCORES_TOL), and the logits' budget
])  # fmt: skip
def test_each_mode_is_held_to_the_subjects_class_floor_and_budgets(tiny64, monkeypatch, mode, loosened):
    """The tolerance each mode compares with is the subject's class's: its relative floor (budgets.tol) and its
    measured absolute budgets (budgets.atol), not the fixed float64 tolerances. With a floor of 1e-6, or a budget
    of 1e-3, the error passes; with the fixed tolerances it fails in that mode."""
    from gpt2core.verification import verify

    model, refs = tiny64
    fixed = verify_references(Off(model, mode), refs)
    assert fixed["verdict"] == "FAIL" and fixed["first_divergence"]["mode"] == mode, fixed["first_divergence"]
    real = verify.budgets_of

    def looser(subject, refs):
        b = real(subject, refs)
        if loosened == "floor":
            b.tol = {refs.dtype: 1e-6}
        else:
            b.atol = lambda case, name: 1e-3
        return b

    monkeypatch.setattr(verify, "budgets_of", looser)
    loose = verify_references(Off(model, mode), refs)
    assert loose["verdict"] == "PASS" and loose["modes"][mode]["ok"] is True, loose["reasons"]


class BothGenerationsOff:
    """gpt2core's engine with every checkpoint right and both its greedy continuation and its sampled scores
    spoiled (the last generated token moved; every kept score raised by 1e-3)."""

    capabilities = frozenset({"generate", "sample"})
    name = "both-generations-off"

    def __init__(self, model):
        self.inner = NumpySubject(model)

    def checkpoints(self, case):
        return self.inner.checkpoints(case)

    def generate(self, case, n):
        ids = self.inner.generate(case, n).copy()
        ids[:, -1] = (ids[:, -1] + 1) % 50
        return ids

    def sample_scores(self, case, settings, path_ids):
        return {k: np.where(np.isfinite(s), s + 1e-3, s) for k, s in self.inner.sample_scores(case, settings, path_ids).items()}


def test_with_both_generations_failing_the_first_divergence_is_sampled_generation_then_greedy(tiny64):
    """Sampled generation ranks before greedy generation (its scores come from the step's logits; a greedy
    continuation is the end of the line), and each case's first is the same order."""
    model, refs = tiny64
    run = verify_references(BothGenerationsOff(model), refs)
    both = [c.name for c in refs.cases if c.greedy is not None and c.sampling is not None]
    assert run["verdict"] == "FAIL" and both, run["reasons"]
    fd = run["first_divergence"]
    assert (fd["mode"], fd["case"], fd["name"]) == ("sampled", both[0], "sampled generation"), fd
    assert all(run["first_per_case"][c]["mode"] == "sampled" for c in both), run["first_per_case"]


def test_a_float32_engines_sampled_scores_are_held_to_float32s_floor(tiny_dir, tmp_path_factory, monkeypatch):
    """gpt2core's engine in float32 against float32 references, its measured budgets taken away so the floor alone
    decides: its sampled scores differ from transformers' by float32 rounding, which float32's tolerance allows
    (float64's would not)."""
    from support.references import reference_set

    from gpt2core.verification import verify

    real = verify.budgets_of

    def floor_only(subject, refs):
        b = real(subject, refs)
        b.atol = lambda case, name: 0.0
        return b

    monkeypatch.setattr(verify, "budgets_of", floor_only)
    refs = reference_set(tiny_dir, np.float32, tmp_path_factory)
    subject = NumpySubject(engine_model(tiny_dir, np.float32))
    subject.capabilities = frozenset({"sample"})
    run = verify_references(subject, refs)
    assert run["modes"]["sampled"]["ok"] is True, run["reasons"]
    assert max(s["max_abs"] for r in run["sampled"] for s in r["steps"]) > 0  # rounding there is, and it passes


def test_a_failing_modes_junit_case_carries_its_worst_rows_message(tiny64, tmp_path):
    """Cached decoding off at the logits: the checkpoint row's cached result carries its message (the comparison's,
    naming the step), and JUnit's 'mode cached' case fails with that message."""
    model, refs = tiny64
    run = verify_references(Off(model, "cached"), refs)
    (row,) = [r for r in run["checkpoints"] if r["name"] == "logits"]
    message = row["cached"]["message"]
    assert not row["cached"]["ok"] and message.startswith("logits@t=") and ": EXCEEDS TOLERANCE: " in message, message
    cases, failures, _ = junit_of(run, tmp_path)
    (mode,) = [c for c in failures if c.name == "mode cached"]
    assert mode.result[0].message == message, (mode.result[0].message, message)
