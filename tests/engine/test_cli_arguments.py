"""Every argument of every command, given a bad value, is refused in one line with exit status 2 before any
model is loaded, built or written.

BAD_ARGUMENTS holds at least one bad value per argument; `test_every_argument_has_a_bad_value` walks each
command's parser (what --help prints) and fails on an argument left out.
"""

from __future__ import annotations

import sys

import pytest

from gpt2core import cli

TOO_LONG = "hello " * 200  # 200+ tokens: more than the tiny model's 128 positions
# (command, option) -> [(arguments after the command, what the one line must say)]; MODEL is the tiny
# model, EMPTY an empty directory, FULL a directory with a file in it, MISSING a path that does not exist
BAD_ARGUMENTS = {
    (None, "--debug"): [(["--debug=yes"], "gpt2core: error: argument --debug: ignored explicit argument 'yes'")],
    ("init-model", "dir"): [(["FULL"], "FULL is not empty; give a new or empty directory"),
                            (["FULL/file"], "FULL/file is a file")],
    ("init-model", "--shape"): [(["EMPTY", "--shape", "2B"], "argument --shape: invalid choice: '2B'")],
    ("init-model", "--seed"): [(["EMPTY", "--seed", "-1"], "argument --seed: -1 is outside 0 to 2**63-1")],
    ("init-model", "--stress"): [(["EMPTY", "--stress=yes"], "argument --stress: ignored explicit argument 'yes'")],
    ("generate", "--model"): [(["--model", "MISSING", "--prompt", "x"], "argument --model: model directory not found"),
                              (["--model", "EMPTY", "--prompt", "x"], "EMPTY has no config.json")],
    ("generate", "--prompt"): [(["--model", "MODEL", "--prompt", ""], "argument --prompt: '' is empty"),
                               (["--model", "MODEL"], "the following arguments are required: --prompt")],
    ("generate", "--max-new-tokens"): [
        (["--model", "MODEL", "--prompt", "x", "--max-new-tokens", "-1"], "argument --max-new-tokens: -1 is outside 0 or more"),
        (["--model", "MODEL", "--prompt", TOO_LONG, "--max-new-tokens", "1"], "is more than the model's n_positions 128"),
        (["--model", "MODEL", "--prompt", "x", "--max-new-tokens", "128"], "--max-new-tokens 128 is more than the model's n_positions 128"),
    ],
    ("generate", "--dtype"): [(["--model", "MODEL", "--prompt", "x", "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'")],
    ("generate", "--sample"): [(["--model", "MODEL", "--prompt", "x", "--sample=1"], "argument --sample: ignored explicit argument '1'")],
    ("generate", "--temperature"): [
        (["--model", "MODEL", "--prompt", "x", "--temperature", "0"], "argument --temperature: 0 is outside (0, inf)"),
        (["--model", "MODEL", "--prompt", "x", "--temperature", "nan"], "argument --temperature: nan is outside (0, inf)"),
        (["--model", "MODEL", "--prompt", "x", "--temperature", "inf"], "argument --temperature: inf is outside (0, inf)"),
    ],
    ("generate", "--top-k"): [(["--model", "MODEL", "--prompt", "x", "--top-k", "-2"], "argument --top-k: -2 is outside 0 or more"),
                              (["--model", "MODEL", "--prompt", "x", "--top-k", "2.5"], "argument --top-k: '2.5' is not an integer")],
    ("generate", "--top-p"): [(["--model", "MODEL", "--prompt", "x", "--top-p", "1.5"], "argument --top-p: 1.5 is outside (0, 1]"),
                              (["--model", "MODEL", "--prompt", "x", "--top-p", "0"], "argument --top-p: 0 is outside (0, 1]"),
                              (["--model", "MODEL", "--prompt", "x", "--top-p", "abc"], "argument --top-p: 'abc' is not a number")],
    ("generate", "--seed"): [(["--model", "MODEL", "--prompt", "x", "--sample", "--seed", "-5"], "argument --seed: -5 is outside 0 to 2**63-1"),
                             (["--model", "MODEL", "--prompt", "x", "--seed", "3"], "--seed seeds the sampler, and greedy decoding does not sample")],
    ("generate", "--json"): [(["--model", "MODEL", "--prompt", "x", "--json=no"], "argument --json: ignored explicit argument 'no'")],
    ("references", "--model"): [(["--model", "MISSING", "--out", "EMPTY"], "argument --model: model directory not found")],
    ("references", "--out"): [(["--model", "MODEL", "--out", "FULL"], "argument --out: FULL is not empty"),
                              (["--model", "MODEL"], "the following arguments are required: --out")],
    ("references", "--prompt"): [(["--model", "MODEL", "--out", "EMPTY", "--prompt", ""], "argument --prompt: '' is empty"),
                                 (["--model", "MODEL", "--out", "EMPTY", "--prompt", TOO_LONG], "more than the model's n_positions 128")],
    ("references", "--dtype"): [(["--model", "MODEL", "--out", "EMPTY", "--dtype", "bfloat16"], "argument --dtype: invalid choice: 'bfloat16'")],
    ("references", "--full-length"): [(["--model", "MODEL", "--out", "EMPTY", "--full-length=1"], "argument --full-length: ignored explicit argument")],
    ("verify", "--model"): [(["--model", "MISSING"], "argument --model: model directory not found")],
    ("verify", "--dtype"): [(["--model", "MODEL", "--dtype", "float8"], "argument --dtype: invalid choice: 'float8'")],
    ("verify", "--references"): [(["--model", "MODEL", "--references", "MISSING"], "argument --references: MISSING: no such directory"),
                                 (["--model", "MODEL", "--references", "EMPTY"], "no references in EMPTY (manifest.json not found)"),
                                 (["--model", "MODEL", "--references", "EMPTY", "--prompt", "x"], "--references fixes the cases; --prompt would be ignored")],
    ("verify", "--prompt"): [(["--model", "MODEL", "--prompt", ""], "argument --prompt: '' is empty"),
                             (["--model", "MODEL", "--prompt", TOO_LONG], "more than the model's n_positions 128")],
    ("verify", "--full-length"): [(["--model", "MODEL", "--references", "EMPTY", "--full-length"], "--references fixes the cases; --full-length would be ignored")],
    ("verify", "--json"): [(["--model", "MODEL", "--json=1"], "argument --json: ignored explicit argument")],
    ("verify", "--subject"): [(["--model", "MODEL", "--subject", "mypkg.adapter"], "argument --subject: 'mypkg.adapter' is not MODULE:FACTORY"),
                              (["--model", "MODEL", "--subject", "no_such_module_xyz:make"], "cannot import no_such_module_xyz"),
                              (["--model", "MODEL", "--subject", "a:b", "--dumps", "EMPTY"], "--subject and --dumps name two subjects")],
    ("verify", "--dumps"): [(["--model", "MODEL", "--dumps", "MISSING"], "argument --dumps: MISSING: no such directory"),
                            (["--model", "MODEL", "--dumps", "EMPTY"], "--dumps needs --map MAP")],
    ("verify", "--map"): [(["--model", "MODEL", "--map", "MISSING"], "argument --map: MISSING: no such file"),
                          (["--model", "MODEL", "--map", "FULL/file", "--subject-cmd", "x {dumps}"], "--map FULL/file: not valid JSON"),
                          (["--model", "MODEL", "--map", "FULL/file"], "--map describes dumps: give it with --dumps DIR or --subject-cmd CMD")],
    ("verify", "--subject-cmd"): [(["--model", "MODEL", "--subject-cmd", "  "], "argument --subject-cmd: '  ' is blank"),
                                  (["--model", "MODEL", "--subject-cmd", "true"], "--subject-cmd needs --map MAP")],
    ("verify", "--timeout"): [(["--model", "MODEL", "--timeout", "-3"], "argument --timeout: -3 is outside (0, inf) seconds"),
                              (["--model", "MODEL", "--timeout", "5"], "--timeout limits --subject-cmd; give it with --subject-cmd CMD")],
    ("verify", "--require"): [(["--model", "MODEL", "--require", "some"], "argument --require: invalid choice: 'some'")],
    ("verify", "--junit"): [(["--model", "MODEL", "--junit", "MISSING/out.xml"], "argument --junit: MISSING/out.xml: directory"),
                            (["--model", "MODEL", "--junit", "EMPTY"], "argument --junit: EMPTY is a directory")],
    ("verify", "--html"): [(["--model", "MODEL", "--html", "MISSING/out.html"], "argument --html: MISSING/out.html: directory"),
                           (["--model", "MODEL", "--html", "EMPTY"], "argument --html: EMPTY is a directory")],
    ("verify", "--junit-group"): [(["--model", "MODEL", "--junit-group", "layer"], "argument --junit-group: invalid choice: 'layer'")],
    ("verify", "--no-cache"): [(["--model", "MODEL", "--no-cache=1"], "argument --no-cache: ignored explicit argument")],
    ("budgets", "--references"): [(["--references", "MISSING", "--precision", "float16"], "argument --references: MISSING"),
                                  (["--references", "EMPTY", "--model", "MODEL", "--precision", "float16"], "no references in EMPTY (manifest.json not found)")],
    ("budgets", "--model"): [(["--references", "EMPTY", "--model", "MISSING", "--precision", "float16"], "argument --model: model directory not found")],
    ("budgets", "--precision"): [(["--references", "EMPTY", "--model", "MODEL", "--precision", "int4"], "unknown precision 'int4'"),
                                 (["--references", "EMPTY", "--precision", ""], "argument --precision: '' is empty")],
    ("budgets", "--force"): [(["--references", "EMPTY", "--precision", "float16", "--force=1"], "argument --force: ignored explicit argument")],
    ("budgets", "--check"): [(["--references", "EMPTY", "--precision", "float16", "--check=1"], "argument --check: ignored explicit argument")],
    ("budgets", "--json"): [(["--references", "EMPTY", "--precision", "float16", "--json=1"], "argument --json: ignored explicit argument")],
    ("cache", "action"): [(["flush"], "argument action: invalid choice: 'flush'")],
    ("cache", "--json"): [(["list", "--json=1"], "argument --json: ignored explicit argument")],
    ("faults", "--model"): [(["--model", "MISSING"], "argument --model: model directory not found")],
    ("faults", "--fault"): [(["--fault", "nonsense"], "--fault nonsense: not a known fault")],
    ("faults", "--no-sensitivity"): [(["--no-sensitivity=1"], "argument --no-sensitivity: ignored explicit argument")],
    ("faults", "--json"): [(["--json=1"], "argument --json: ignored explicit argument")],
    ("mutation-score", "--min"): [(["--min", "1.5"], "argument --min: 1.5 is outside [0, 1]"),
                                  (["--min", "-0.1"], "argument --min: -0.1 is outside [0, 1]")],
    ("mutation-score", "--equivalents"): [(["--equivalents", "MISSING"], "argument --equivalents: MISSING: no such file")],
    ("mutation-score", "--merge"): [(["--merge", "EMPTY", "MISSING"], "argument --merge: MISSING: no such directory")],
    ("mutation-score", "--json"): [(["--json=1"], "argument --json: ignored explicit argument")],
    ("mutation-score", "--stamp"): [(["--stamp=1"], "argument --stamp: ignored explicit argument")],
    ("audit", "--model"): [(["--model", "MISSING"], "argument --model: model directory not found")],
    ("audit", "--fault-model"): [(["--fault-model", "EMPTY"], "argument --fault-model: EMPTY has no config.json")],
    ("audit", "--out"): [(["--out", "MISSING/report.html"], "argument --out: MISSING/report.html: directory"),
                         (["--out", "EMPTY"], "argument --out: EMPTY is a directory")],
    ("audit", "--mutants"): [(["--mutants", "MISSING"], "argument --mutants: MISSING: no such directory")],
    ("audit", "--min"): [(["--min", "2"], "argument --min: 2 is outside [0, 1]")],
    ("audit", "--equivalents"): [(["--equivalents", "EMPTY"], "argument --equivalents: EMPTY: no such file")],
    ("audit", "--fault"): [(["--fault", "nonsense"], "--fault nonsense: not a known fault")],
    ("audit", "--no-sensitivity"): [(["--no-sensitivity=1"], "argument --no-sensitivity: ignored explicit argument")],
    ("audit", "--json"): [(["--json=1"], "argument --json: ignored explicit argument")],
    ("bench", "--model"): [(["--model", "MISSING"], "argument --model: model directory not found")],
    ("bench", "--dtype"): [(["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'")],
    ("bench", "--threads"): [(["--threads", "0"], "argument --threads: 0 is outside 1 or more")],
    ("bench", "--new-tokens"): [(["--new-tokens", "x"], "argument --new-tokens: 'x' is not an integer"),
                                (["--model", "MODEL", "--new-tokens", "121"], "--new-tokens 121 after the 8-token prompt is more than the model's n_positions 128")],
    ("bench", "--repeats"): [(["--repeats", "0"], "argument --repeats: 0 is outside 1 or more")],
    ("bench", "--json"): [(["--json=1"], "argument --json: ignored explicit argument")],
}  # fmt: skip
WORK = [  # what no refused command may reach: loading, building, capturing, writing
    "gpt2core.engine.loading.load", "gpt2core.init_model.init_model", "gpt2core.init_model.builtin_model_dir",
    "gpt2core.verification.stress.stress_model_dir", "gpt2core.verification.reference_set.write_references",
    "gpt2core.verification.verify.verify_model", "gpt2core.verification.faults.catalogue_on",
    "gpt2core.audit.run_audit", "gpt2core.bench.run_bench", "gpt2core.mutation.read_run",
]


def commands() -> dict:
    """command name (None: the top level) -> its parser, as --help shows them."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {None: parser, **sub.choices}


def arguments(parser) -> list[str]:
    """The arguments --help lists: each option's long spelling, or a positional's name."""
    return [a.option_strings[-1] if a.option_strings else a.dest for a in parser._actions
            if a.dest not in ("help", "command")]  # fmt: skip


def test_every_argument_has_a_bad_value():
    listed = {(name, arg) for name, parser in commands().items() for arg in arguments(parser)}
    assert listed - BAD_ARGUMENTS.keys() == set(), "arguments with no bad value tried"
    assert BAD_ARGUMENTS.keys() - listed == set(), "bad values for arguments that do not exist"


CASES = [pytest.param(cmd, arg, argv, message, id=f"{cmd or 'gpt2core'} {arg} {i}")
         for (cmd, arg), tries in BAD_ARGUMENTS.items() for i, (argv, message) in enumerate(tries)]  # fmt: skip


@pytest.mark.parametrize(("command", "argument", "argv", "message"), CASES)
def test_bad_argument_is_one_line_before_any_work(tiny_dir, tmp_path, monkeypatch, capsys, command, argument, argv, message):
    places = {"MODEL": str(tiny_dir), "EMPTY": str(tmp_path / "empty"), "FULL": str(tmp_path / "full"),
              "MISSING": str(tmp_path / "missing")}  # fmt: skip
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")

    def fill(text: str) -> str:
        for key, path in places.items():
            text = text.replace(key, path) if text.startswith(key) else text
        return text

    monkeypatch.chdir(tmp_path / "empty")  # nothing may be written here (report.html) or in GPT2CORE_HOME
    monkeypatch.setenv("GPT2CORE_HOME", str(tmp_path / "home"))
    for work in WORK:
        monkeypatch.setattr(work, lambda *a, _w=work, **k: pytest.fail(f"reached {_w} before refusing the arguments"))
    full = [fill(a) for a in argv] if command is None else [command, *(fill(a) for a in argv)]
    if command is None:
        full += ["generate", "--model", str(tiny_dir), "--prompt", "x"]
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(cli.main(full))
    err = capsys.readouterr().err
    expected = fill(message) if message.split(" ")[0] in places else message
    for key, path in places.items():
        expected = expected.replace(f" {key}", f" {path}").replace(f"{key}/", f"{path}/")
    shown = f"{command} {argument}: {full}\n{err}"
    assert exit_info.value.code == 2, shown
    assert expected in err and err.startswith("gpt2core: error: "), shown
    assert err.count("\n") == 1 and "Traceback" not in err, shown
    assert not (tmp_path / "home").exists() and list((tmp_path / "empty").iterdir()) == [], shown
