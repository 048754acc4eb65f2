"""Every mode through files, in-process: an engine's dumps of the chained, isolated, cached, generate and sampled
modes (gpt2core's engine, each answer it gives verify written where dumps.py says an engine command writes it)
are read back through the map and judged exactly as the engine's own answers were; one spoiled file in any mode
fails that mode, naming it, and a missing decoding step fails naming the file. The C engine, llama.cpp and
ONNX Runtime run the same modes through a real command (test_c_engine.py and others, outside mutmut's selection);
this keeps dumps.py's readers of every mode under the fast tests mutmut runs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from support.dump_engine import DumpingSubject, every_mode_map
from support.engine_memo import numpy_subject

from gpt2core.verification.dumps import DumpMap, DumpSubject
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.verify import verify_references


def same(read, written, what: str) -> None:
    """What the reader gives back is what the engine wrote: the same names, shapes, dtypes and values (masked
    and padding entries included: the every-mode map lays them out as gpt2core does)."""
    assert set(read) == set(written), (what, sorted(set(read) ^ set(written)))
    for name in written:
        got, want = np.asarray(read[name]), np.asarray(written[name])
        assert (got.shape, got.dtype) == (want.shape, want.dtype), (what, name, got.shape, got.dtype, want.shape, want.dtype)
        assert np.array_equal(got, want, equal_nan=True), (what, name, np.abs(got - want).max())


@pytest.mark.parametrize("case_name", ["hello", "padded_batch"])
def test_each_mode_read_back_from_its_files_is_the_engines_answer(tiny_dir, tmp_path, tmp_path_factory, case_name):
    """Each reader of dumps.py, called directly on the files one case's answers were written to: the chained
    checkpoints, every isolated stage, each decoding step, the greedy ids and the sampled scores come back exactly
    as the engine gave them (one row, and a left-padded batch). The cheap, direct form of the verify runs below."""
    from support.references import reference_set

    from gpt2core.verification.mode_inputs import default_split

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    case = next(c for c in refs.cases if c.name == case_name)
    writer = DumpingSubject(numpy_subject(tiny_dir, "float64"), tmp_path)
    reader = DumpSubject(tmp_path, DumpMap(every_mode_map()), read_model_dir(tiny_dir).config)
    assert reader.can_run(case) is None and reader.files_not_read() == []
    written = writer.checkpoints(case)  # each answer written first, then read back
    same(reader.checkpoints(case), written, "chained")
    written = {n: writer.stage(n, case, case.array) for n in sorted(reader.provides)}
    same({n: reader.stage(n, case, case.array) for n in written}, written, "isolated")
    split = default_split(case)
    written = list(writer.decode(case, split))
    steps = list(reader.decode(case, split))
    assert len(steps) == len(written) == case.input_ids.shape[1] - split > 0
    for t, (read, wrote) in enumerate(zip(steps, written), start=split):
        same(read, wrote, f"decode t{t}")
    assert case.greedy and (case.sampling or case_name == "hello")  # hello records no sampled path
    n, _ = case.greedy
    written = writer.generate(case, n)
    same({"ids": reader.generate(case, n)}, {"ids": written}, "generate")
    if case.sampling:
        settings, ids = case.sampling
        written = writer.sample_scores(case, settings, ids)
        same(reader.sample_scores(case, settings, ids), written, "sampled")
    assert reader.files_not_read() == [], reader.files_not_read()  # every file written was read back


@pytest.fixture(scope="module")
def every_mode(tiny_dir, tmp_path_factory):
    """(reference set, dump directory, the Python subject's own run): the tiny model in float64, every case."""
    from support.references import reference_set

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    out = tmp_path_factory.mktemp("every-mode") / "dumps"
    own = verify_references(DumpingSubject(numpy_subject(tiny_dir, "float64"), out), refs, require="all")
    assert own["verdict"] == "PASS", own["reasons"] + own["left_out"]
    return refs, out, own


def read_back(tiny_dir, refs, dumps):
    subject = DumpSubject(dumps, DumpMap(every_mode_map()), read_model_dir(tiny_dir).config)
    return verify_references(subject, refs, require="all")


def margins(run: dict, mode: str) -> dict:
    return {r["name"]: r[mode] and (r[mode]["margin"], r[mode]["case"]) for r in run["checkpoints"]}


def test_every_mode_through_files_is_judged_as_the_engines_own_answers(tiny_dir, every_mode):
    refs, dumps, own = every_mode
    run = read_back(tiny_dir, refs, dumps)
    assert run["verdict"] == "PASS" and run["left_out"] == [] and run["files_not_read"] == [], run["reasons"] + run["left_out"]
    assert all(m["ran"] and m["ok"] for m in run["modes"].values()), run["modes"]
    assert run["cases_run"] == own["cases_run"] == [c.name for c in refs.cases] and "padded_batch" in run["cases_run"]
    for mode in ("chained", "isolated", "cached"):
        assert margins(run, mode) == margins(own, mode), mode
    strip = lambda results: [{k: v for k, v in g.items() if k != "settings"} for g in results]  # noqa: E731
    assert strip(run["generate"]) == strip(own["generate"]) and "padded_batch" in [g["case"] for g in run["generate"]]
    assert strip(run["sampled"]) == strip(own["sampled"]) and run["sampled"]
    assert run["distribution"] == own["distribution"]


def spoil_values(path):
    a = np.load(path)
    real = np.isfinite(a) & (a != np.finfo(a.dtype).min)
    np.save(path, np.where(real, a + 1e-3, a))


def spoil_last_token(path):
    ids = np.load(path)
    ids[:, -1] = (ids[:, -1] + 1) % 50257
    np.save(path, ids)


def last_step(refs, case_name):
    case = next(c for c in refs.cases if c.name == case_name)
    return case.input_ids.shape[1] - 1


@pytest.mark.parametrize("file, spoil, mode, said", [
    ("hello/stage/h1.mlp_out.npy", spoil_values, "isolated", "h1.mlp_out (isolated, case hello): "),
    ("hello/decode/t{last}/h0.k.npy", spoil_values, "cached", "(cached, case hello): "),
    ("padded_batch/decode/t{last}/logits.npy", spoil_values, "cached", "(cached, case padded_batch): "),
    ("padded_batch/generated_ids.npy", spoil_last_token, "generate", "padded_batch"),
    ("sentence/generated_ids.npy", spoil_last_token, "generate", "sentence"),
    ("one_token/sample.scores@step=2.npy", spoil_values, "sampled", "one_token"),
    ("padded_batch/sample.scores@step=0.npy", spoil_values, "sampled", "padded_batch"),
])  # fmt: skip
def test_a_spoiled_file_fails_its_mode_naming_it(tiny_dir, every_mode, tmp_path, file, spoil, mode, said):
    refs, dumps, _ = every_mode
    copy = tmp_path / "dumps"
    shutil.copytree(dumps, copy)
    spoil(copy / file.format(last=last_step(refs, file.split("/")[0])))
    run = read_back(tiny_dir, refs, copy)
    assert run["verdict"] == "FAIL" and run["modes"][mode]["ok"] is False, run["reasons"]
    assert all(m["ok"] for name, m in run["modes"].items() if name != mode), run["modes"]  # only that mode
    assert any(said in r for r in run["reasons"]), run["reasons"]


def test_a_decoding_step_left_out_fails_naming_its_file(tiny_dir, every_mode, tmp_path):
    refs, dumps, _ = every_mode
    copy = tmp_path / "dumps"
    shutil.copytree(dumps, copy)
    t = last_step(refs, "sentence")
    shutil.rmtree(copy / "sentence" / "decode" / f"t{t}")
    run = read_back(tiny_dir, refs, copy)
    assert run["verdict"] == "FAIL" and run["modes"]["cached"]["ok"] is False
    assert any(f"sentence/decode/t{t}/" in r and "(cached, case sentence)" in r for r in run["reasons"]), run["reasons"]


def without_batch_axis(refs, dumps, out):
    """The dumps with every file of a one-row case written without its batch axis (as an engine that runs one row
    at a time writes them: single_row_without_batch in the map)."""
    shutil.copytree(dumps, out)
    for case in refs.cases:
        if case.input_ids.shape[0] == 1:
            for path in (out / case.name).rglob("*.npy"):
                np.save(path, np.load(path)[0])
    return out


@pytest.mark.parametrize("declared", [True, False])
def test_one_row_cases_written_without_their_batch_axis(tiny_dir, every_mode, tmp_path, declared):
    """Declared (single_row_without_batch), every mode reads them back and passes; undeclared, the greedy ids and
    the sampled scores of a one-row case do not have the case's shape, and those modes fail."""
    refs, dumps, own = every_mode
    squeezed = without_batch_axis(refs, dumps, tmp_path / "dumps")
    dump_map = {**every_mode_map(), "single_row_without_batch": declared}
    run = verify_references(DumpSubject(squeezed, DumpMap(dump_map), read_model_dir(tiny_dir).config), refs, require="all")
    if declared:
        assert run["verdict"] == "PASS" and all(m["ran"] and m["ok"] for m in run["modes"].values()), run["reasons"]
        assert margins(run, "cached") == margins(own, "cached") and run["generate"] == own["generate"]
    else:
        assert run["verdict"] == "FAIL" and not run["modes"]["generate"]["ok"] and not run["modes"]["sampled"]["ok"]
        assert any("(generate, case hello)" in r for r in run["reasons"]), run["reasons"]
