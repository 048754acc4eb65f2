"""A command subject's contract, row by row: every way an engine command can misbehave is a named error (exit 2)
or a failure or NOT RUN line that the verdict counts; never a pass it did not earn. The same for a Python
subject whose claims (`provides`, `can_run`, capabilities) disagree with what it returns.

The command is a shell line that copies dumps gpt2core's engine wrote in its own layout (support.dump_engine) into
{dumps}, then does one thing wrong."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
from support.dump_engine import MAP, write_dumps
from support.models import engine_model
from support.verdict_subjects import Altered

from gpt2core.cli import main
from gpt2core.verification.dumps import DumpMap
from gpt2core.verification.errors import DumpError, SubjectError
from gpt2core.verification.external import CommandSubject
from gpt2core.verification.verify import verify_references


@pytest.fixture(scope="module")
def engine(tiny_dir, tmp_path_factory):
    """(tiny model dir, reference set, a directory of correct dumps for MAP)."""
    from support.references import reference_set

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    good = tmp_path_factory.mktemp("good-dumps")
    write_dumps(engine_model(tiny_dir, np.float64), refs, good)
    return tiny_dir, refs, good


def run_command(engine, tmp_path, capsys, after: str, dump_map: dict = MAP, *extra):
    """gpt2core verify --subject-cmd '<copy the good dumps>; <after>' -> (exit status, report or None, stderr)."""
    tiny_dir, refs, good = engine
    (tmp_path / "map.json").write_text(json.dumps(dump_map))
    cmd = f"cp -r {shlex.quote(str(good))}/. {{dumps}} && cd {{dumps}} && {after}"
    rc = main(["verify", "--model", str(tiny_dir), "--references", str(refs.root), "--subject-cmd", cmd,
               "--map", str(tmp_path / "map.json"), "--json", *extra])  # fmt: skip
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out else None), out.err


SAVE = "python -c 'import numpy as np, sys; np.save(sys.argv[1], {})' {}"  # writes one .npy file in the command

# (row, what the command does after copying the good dumps, extra arguments, the outcome)
#   outcome ("error", text): exit 2, one line naming it;  ("FAIL", text): a failure naming it;
#   ("left out", text): PASS under --require offered, INCOMPLETE under --require all, the line saying what
ROWS = [
    ("exit status non-zero", "exit 3", [], ("error", "the engine command exited with status 3")),
    ("exit status 1", "echo 'engine: out of memory' >&2; exit 1", [], ("error", "exited with status 1: ")),
    ("killed by a signal", "kill -SEGV $$", [], ("error", "was killed by signal SIGSEGV (11)")),
    ("a child killed, as a shell reports it", "sh -c 'kill -KILL $$'", [], ("error", "status 137 (a shell's status for signal SIGKILL)")),
    # a mutant that loses the timeout waits 2 s, not 30 (a copy still running at 0.25 s is stopped with the same error)
    ("timeout", "sleep 2", ["--timeout", "0.25"], ("error", "ran past --timeout 0.25 s and was stopped")),
    ("a declared file missing", "rm hello/layer1/mlp_act.npy", [], ("FAIL", "hello/layer1/mlp_act.npy is missing")),
    ("an undeclared file present", SAVE.format("np.zeros(3)", "hello/stray.npy"), [], ("left out", "file not read: hello/stray.npy")),
    ("a case the map says it cannot run", "true", [], ("left out", "case padded_batch not run (3 rows, and the map says")),
    ("wrong shape", SAVE.format("np.zeros((3, 5))", "hello/ln_f.npy"), [], ("FAIL", "does not fit layout")),
    ("wrong dtype", SAVE.format("np.zeros((2, 64), np.float32)", "hello/ln_f.npy"), [], ("FAIL", "dtype float32, the map declares precision float64")),
    ("not floats", SAVE.format("np.zeros((2, 64), np.int64)", "hello/ln_f.npy"), [], ("FAIL", "dtype int64, expected floats")),
    ("NaN where the map declares none",
     "python -c 'import numpy as np; a = np.load(\"hello/ln_f.npy\"); a[1, 3] = np.nan; np.save(\"hello/ln_f.npy\", a)'",
     [], ("FAIL", "non-finite value at")),
    ("inf where the map declares none",
     "python -c 'import numpy as np; a = np.load(\"hello/ln_f.npy\"); a[0, 0] = np.inf; np.save(\"hello/ln_f.npy\", a)'",
     [], ("FAIL", "non-finite value at")),
    ("an unreadable file", "printf 'not npy' > hello/ln_f.npy", [], ("FAIL", "not a readable .npy file")),
]  # fmt: skip


@pytest.mark.parametrize("row, after, extra, outcome", ROWS, ids=[r[0] for r in ROWS])
def test_each_way_a_command_misbehaves_is_named_and_counted(engine, tmp_path, capsys, row, after, extra, outcome):
    kind, text = outcome
    rc, report, err = run_command(engine, tmp_path, capsys, after, MAP, *extra)
    if kind == "error":
        assert rc == 2 and report is None and text in err and len(err.strip().splitlines()) == 1, err
        return
    (run,) = report["runs"]
    if kind == "FAIL":
        assert rc == 1 and run["verdict"] == "FAIL" and any(text in r for r in run["reasons"]), run["reasons"]
        return
    assert rc == 0 and run["verdict"] == "PASS" and any(text in r for r in run["left_out"]), run["left_out"]
    stray = ["hello/stray.npy"] if row == "an undeclared file present" else []  # every other file was read
    assert run["files_not_read"] == stray, run["files_not_read"]
    rc, report, _ = run_command(engine, tmp_path, capsys, after, MAP, "--require", "all")
    assert rc == 3 and report["verdict"] == "INCOMPLETE" and any(text in r for r in report["runs"][0]["reasons"])


@pytest.mark.parametrize("claim, text", [
    ({"modes": ["chained", "generate"]}, "generated_ids.npy is missing"),
    ({"modes": ["chained", "isolated"]}, "hello/stage/"),
    ({"modes": ["chained", "cached"]}, "/decode/t"),
    ({"modes": ["chained", "sampled"]}, "sample.scores@step=0.npy is missing"),
    ({"runs": {"batch": True, "padding": True}}, "padded_batch/"),
    ({"masked_scores": "min"}, "a masked entry is not the mask value"),  # the dumps write masked scores -inf, the map says the dtype's minimum
])  # fmt: skip
def test_a_claim_the_outputs_do_not_show_fails(engine, tmp_path, capsys, claim, text):
    """The map claims a mode, batches, or a masking convention the engine's files do not bear out: FAIL, named."""
    rc, report, _ = run_command(engine, tmp_path, capsys, "true", {**MAP, **claim})
    (run,) = report["runs"]
    assert rc == 1 and run["verdict"] == "FAIL" and any(text in r for r in run["reasons"]), run["reasons"]


def test_greedy_ids_that_are_not_integers_are_named(engine, tmp_path, capsys):
    after = SAVE.format("np.zeros((1, 10))", "hello/generated_ids.npy")
    rc, report, _ = run_command(engine, tmp_path, capsys, after, {**MAP, "modes": ["chained", "generate"]})
    reasons = report["runs"][0]["reasons"]
    assert rc == 1 and any(r.startswith("greedy generation (generate, case hello): ") and
                           "dtype float64, expected integer token ids [B, T + 8]" in r for r in reasons), reasons  # fmt: skip


def test_a_file_left_from_an_earlier_run_is_not_this_runs_output(engine, tmp_path):
    """The dump directory holds a previous run's files (an engine command run through the Python API with a
    directory of its own): one the command does not write again is named, never compared as this run's."""
    import shutil

    from gpt2core.verification.model_dir import read_model_dir

    tiny_dir, refs, good = engine
    dumps = tmp_path / "dumps"
    shutil.copytree(good, dumps)  # the earlier run
    command = f"cd {shlex.quote(str(good))} && find . -name '*.npy' ! -path ./sentence/ln_f.npy -exec cp --parents {{}} {{dumps}} ';'"
    subject = CommandSubject(command, dumps, DumpMap(MAP), read_model_dir(tiny_dir).config, 60)
    run = verify_references(subject, refs)
    assert run["verdict"] == "FAIL" and run["reasons"], run
    assert all("sentence/ln_f.npy is left from an earlier run: the engine command did not write it (it was there, "
               "unchanged, before the command ran)" in r for r in run["reasons"]), run["reasons"]  # fmt: skip


def test_the_command_is_given_the_references_the_model_and_its_own_dump_directory(engine, tmp_path, capsys):
    tiny_dir, refs, good = engine
    after = f"test -f {{references}}/manifest.json && test -f {{model}}/config.json && test {{references}} = {shlex.quote(str(refs.root))}"
    rc, report, err = run_command(engine, tmp_path, capsys, after)
    assert rc == 0 and report["verdict"] == "PASS", err


def test_a_command_subject_runs_its_command_before_any_mode_reads_a_file(engine, tmp_path):
    """Through the Python API a mode may be asked first: each runs the command once, before reading, into a
    directory it makes (parents included), named after the dtype."""
    from gpt2core.verification.external import command_factory
    from gpt2core.verification.model_dir import read_model_dir

    tiny_dir, refs, good = engine
    case = next(c for c in refs.cases if c.name == "hello")
    template = f"cp -r {shlex.quote(str(good))}/. {{dumps}} && echo ran >> {shlex.quote(str(tmp_path / 'runs'))}"
    dump_map = DumpMap({**MAP, "modes": ["chained", "isolated", "cached", "generate", "sampled"]})
    make = command_factory(template, dump_map, tmp_path / "a" / "b")
    md = read_model_dir(tiny_dir)
    first_calls = {
        "checkpoints": lambda s: s.checkpoints(case)["ln_f"],
        "stage": lambda s: s.stage("ln_f", case, None),
        "decode": lambda s: next(iter(s.decode(case, 0)))["ln_f"],
        "generate": lambda s: s.generate(case, 1),
        "sample_scores": lambda s: s.sample_scores(case, None, case.input_ids)["x"],
    }
    for mode, call in first_calls.items():
        subject = make(md, "float32")
        assert subject.root == tmp_path / "a" / "b" / "float32"
        (tmp_path / "runs").unlink(missing_ok=True)
        try:
            call(subject)
        except (DumpError, KeyError):  # the good dumps hold the chained pass only: the other modes' files are missing
            pass
        assert (tmp_path / "runs").read_text() == "ran\n", mode
        assert subject.ran is True, mode
    subject.checkpoints(case)["embeddings"]  # a later call, any mode, does not run the command again
    assert (tmp_path / "runs").read_text() == "ran\n"


def test_a_missing_dump_directory_is_named():
    from gpt2core.verification.external import dump_factory

    with pytest.raises(SubjectError, match="dump directory not found: /nonexistent/dumps"):
        dump_factory("/nonexistent/dumps", DumpMap(MAP))


@pytest.mark.parametrize("returncode, words", [
    (1, "exited with status 1"), (3, "exited with status 3"), (0, "exited with status 0"), (128, "exited with status 128"),
    (129, "exited with status 129 (a shell's status for signal SIGHUP)"),
    (137, "exited with status 137 (a shell's status for signal SIGKILL)"),
    (139, "exited with status 139 (a shell's status for signal SIGSEGV)"),
    (228, "exited with status 228"), (255, "exited with status 255"),
    (-9, "was killed by signal SIGKILL (9)"), (-11, "was killed by signal SIGSEGV (11)"), (-1, "was killed by signal SIGHUP (1)"),
])  # fmt: skip
def test_how_a_command_ended_in_words(returncode, words):
    from gpt2core.verification.external import exit_status

    assert exit_status(returncode) == words


@pytest.mark.parametrize("change, text", [
    (lambda s: {"checkpoints": lambda case: {k: v for k, v in s.checkpoints(case).items() if k != "ln_f"}}, "ln_f (chained, case hello): not returned by the subject"),
    (lambda s: {"checkpoints": lambda case: {} if case.name == "hello" else s.checkpoints(case)}, "embeddings (chained, case hello): not returned by the subject"),
    (lambda s: {"decode": lambda case, split: (dict(r) for r in list(s.decode(case, split))[:-1])}, "decode yielded"),
    (lambda s: {"decode": lambda case, split: ({k: v for k, v in r.items() if k != "h1.v"} for r in s.decode(case, split))},
     "h1.v@t="),
    (lambda s: {"generate": lambda case, n: s.generate(case, n)[:, :-1]}, "ids of shape"),
    (lambda s: {"sample_scores": lambda case, settings, ids: {}}, "not returned by the subject"),
])  # fmt: skip
def test_a_python_subject_whose_claims_disagree_with_its_returns_fails(tiny_dir, engine, change, text):
    from gpt2core.verification.numpy_subject import NumpySubject

    _, refs, _ = engine
    inner = NumpySubject(engine_model(tiny_dir, np.float64))
    run = verify_references(Altered(inner, **change(inner)), refs)
    assert run["verdict"] == "FAIL" and any(text in r for r in run["reasons"]), run["reasons"]


def test_a_capability_without_its_method_is_refused(tiny_dir, engine):
    from gpt2core.verification.numpy_subject import NumpySubject

    _, refs, _ = engine

    class NoDecode:
        name, capabilities = "no decode", frozenset({"decode"})

        def __init__(self, inner):
            self.checkpoints = inner.checkpoints

    with pytest.raises(SubjectError, match="declares 'decode' but has no decode\\(\\) method"):
        verify_references(NoDecode(NumpySubject(engine_model(tiny_dir, np.float64))), refs)


@pytest.mark.parametrize("spec, message", [
    ("support.verdict_subjects", "expected MODULE:FACTORY, e.g. my_engine.gpt2core_adapter:make_subject"),
    (":passing", "expected MODULE:FACTORY"),
    ("support.verdict_subjects:", "expected MODULE:FACTORY"),
    ("support.verdict_subjects:passing:x", "support.verdict_subjects has no callable 'passing:x'"),
    ("support.verdict_subjects:SPOILED", "has no callable 'SPOILED'"),
    ("no_such_module_here:make", "cannot import no_such_module_here"),
])  # fmt: skip
def test_a_python_subject_named_wrongly_is_refused_naming_the_option(spec, message):
    from gpt2core.verification.external import import_factory

    with pytest.raises(SubjectError, match=f"^--gpt2core-subject {re.escape(repr(spec))}: .*{re.escape(message)}"):
        import_factory(spec, "--gpt2core-subject")
    with pytest.raises(SubjectError, match=f"^--subject {re.escape(repr(spec))}: "):  # verify's option, by default
        import_factory(spec)


@pytest.mark.parametrize("stderr, said", [
    ("", "the engine command exited with status 1: CMD"),
    ("one", "the engine command exited with status 1: CMD; its stderr ends: one"),
    ("l1\nl2\nl3\nl4\nl5\nl6\nl7\n\n", "the engine command exited with status 1: CMD; its stderr ends: l3 | l4 | l5 | l6 | l7"),
])  # fmt: skip
def test_a_failing_command_is_named_with_the_end_of_its_stderr_on_one_line(tmp_path, stderr, said):
    from gpt2core.verification.external import run_engine_command

    (tmp_path / "err.txt").write_text(stderr)
    template = f"cat {shlex.quote(str(tmp_path / 'err.txt'))} >&2; exit 1"
    with pytest.raises(SubjectError) as e:
        run_engine_command(template, tmp_path, tmp_path / "dumps")
    assert str(e.value) == said.replace("CMD", template)


def test_what_the_command_prints_is_not_verifys_output(engine, tmp_path, capfd):
    """The engine's stdout is captured: `verify --json` prints one JSON object whatever the engine chatters."""
    tiny_dir, refs, good = engine
    (tmp_path / "map.json").write_text(json.dumps(MAP))
    rc = main(["verify", "--model", str(tiny_dir), "--references", str(refs.root), "--map", str(tmp_path / "map.json"),
               "--subject-cmd", f"echo engine chatter; cp -r {shlex.quote(str(good))}/. {{dumps}}", "--json"])  # fmt: skip
    out = capfd.readouterr().out
    assert rc == 0 and "engine chatter" not in out and json.loads(out)["verdict"] == "PASS"


def test_a_python_subject_is_imported_from_the_current_directory_first(tmp_path, monkeypatch):
    import sys

    from gpt2core.verification.external import import_factory

    (tmp_path / "adapter_in_cwd.py").write_text("def make(model_dir, dtype):\n    return 'made'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert import_factory("adapter_in_cwd:make")(None, None) == "made" and sys.path[0] == str(tmp_path)
    monkeypatch.setattr(sys, "path", ["", *[p for p in sys.path if p != str(tmp_path)]])
    import_factory("adapter_in_cwd:make")
    assert str(tmp_path) not in sys.path  # "" already means the current directory
