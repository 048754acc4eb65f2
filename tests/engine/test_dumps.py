"""Engines in any language: dumps in the engine's own layout, read through a declared map.

The dumps here are written by gpt2core's engine rearranged the way a from-scratch engine lays them out
(fused QKV, heads last, no batch axis, logits padded to a multiple of 64, masked scores -inf), so the map
and the comparison are tested against an engine whose numbers are known to be right; a broken copy must
fail at the checkpoint where it is broken, and a deleted file must fail naming it.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from support.dump_engine import MAP, write_dumps
from support.models import engine_model

from gpt2core.cli import main
from gpt2core.verification.dumps import FORMAT, DumpMap
from gpt2core.verification.errors import DumpError

@pytest.fixture
def dumped(tiny_dir, tmp_path, tmp_path_factory):
    from support.references import reference_set

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    (tmp_path / "map.json").write_text(json.dumps(MAP))
    return tiny_dir, refs, tmp_path


def verify(capsys, tiny_dir, refs, dumps, map_file, *extra):
    rc = main(["verify", "--model", str(tiny_dir), "--references", str(refs.root), "--dumps", str(dumps),
               "--map", str(map_file), "--json", *extra])  # fmt: skip
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out else None), out.err


def test_an_engine_in_its_own_layout_passes(dumped, capsys):
    tiny_dir, refs, tmp = dumped
    write_dumps(engine_model(tiny_dir, np.float64), refs, tmp / "dumps")
    rc, report, err = verify(capsys, tiny_dir, refs, tmp / "dumps", tmp / "map.json", "--junit", str(tmp / "junit.xml"))
    assert rc == 0, err
    (run,) = report["runs"]
    assert run["verdict"] == "PASS" and run["subject"] == "rearranged numpy"
    assert run["checkpoints_provided"] == run["checkpoints_total"] == 2 * 14 + 3
    assert run["cases_not_run"] == {"padded_batch": "3 rows, and the map says the engine runs one row at a time (runs.batch false)"}
    assert run["cases_run"] == ["one_token", "hello", "sentence", "random_tokens"]
    assert run["modes"]["isolated"]["ran"] is False
    from junitparser import JUnitXml

    cases = [c for suite in JUnitXml.fromfile(str(tmp / "junit.xml")) for c in suite]
    compared = [c for c in cases if c.classname.startswith("float64.")]  # one per case run and checkpoint
    assert len(compared) == len(run["cases_run"]) * run["checkpoints_total"] and all(not c.result for c in compared)
    (verdict,) = [c for c in cases if c.name == "verdict"]  # the run's own verdict, green for a PASS
    assert not verdict.result
    skipped = [c for c in cases if c not in compared and c is not verdict]  # one per mode and case not run, never one per checkpoint
    assert sorted(c.name for c in skipped) == ["case padded_batch", "mode cached", "mode generate", "mode isolated", "mode sampled"]
    assert all(c.result and c.result[0].__class__.__name__ == "Skipped" for c in skipped)


def test_a_broken_engine_fails_where_it_is_broken(dumped, capsys):
    tiny_dir, refs, tmp = dumped
    write_dumps(engine_model(tiny_dir, np.float64), refs, tmp / "dumps", broken="kv_swapped")
    rc, report, _ = verify(capsys, tiny_dir, refs, tmp / "dumps", tmp / "map.json")
    assert rc == 1 and report["runs"][0]["first_divergence"]["name"] == "h0.k"


def test_a_deleted_dump_file_fails_naming_it(dumped, capsys):
    tiny_dir, refs, tmp = dumped
    write_dumps(engine_model(tiny_dir, np.float64), refs, tmp / "dumps")
    (tmp / "dumps" / "sentence" / "layer1" / "mlp_act.npy").unlink()
    rc, report, _ = verify(capsys, tiny_dir, refs, tmp / "dumps", tmp / "map.json")
    fd = report["runs"][0]["first_divergence"]
    assert rc == 1 and fd["name"] == "h1.mlp_act" and fd["case"] == "sentence"
    assert "sentence/layer1/mlp_act.npy is missing" in fd["message"]


def test_checkpoints_not_provided_are_counted_and_required_on_request(dumped, capsys):
    tiny_dir, refs, tmp = dumped
    write_dumps(engine_model(tiny_dir, np.float64), refs, tmp / "dumps")
    only_logits = {**MAP, "checkpoints": {"logits": MAP["checkpoints"]["logits"]}}
    (tmp / "logits.json").write_text(json.dumps(only_logits))
    rc, report, _ = verify(capsys, tiny_dir, refs, tmp / "dumps", tmp / "logits.json")
    run = report["runs"][0]
    assert rc == 0 and run["checkpoints_provided"] == 1 and "h0.q" in run["not_provided"]
    rc, report, _ = verify(capsys, tiny_dir, refs, tmp / "dumps", tmp / "logits.json", "--require", "all")
    assert rc == 3 and report["verdict"] == "INCOMPLETE"
    main(["verify", "--model", str(tiny_dir), "--references", str(refs.root), "--dumps", str(tmp / "dumps"),
          "--map", str(tmp / "logits.json")])  # fmt: skip
    out = capsys.readouterr().out
    assert "compared 1 of 31 checkpoints (1 passed) over 4 of 5 cases" in out
    assert "not provided by the subject (30 of 31): embeddings; ln_1 (h0-h1); q (h0-h1);" in out  # one entry per kind
    assert "\nh0.q " not in out  # no table row for what was not compared


@pytest.mark.parametrize(("bad", "message"), [
    (lambda p: p.write_bytes(p.read_bytes()[:-10]), "not a readable .npy file"),
    (lambda p: np.save(p, np.array([{"x": 1}], dtype=object), allow_pickle=True), "not a readable .npy file"),
    (lambda p: np.save(p, np.zeros((3, 5))), "does not fit layout"),
    (lambda p: np.save(p, np.zeros((2, 64), np.float32)), "dtype float32, the map declares precision float64"),
])  # fmt: skip
def test_broken_dump_files_are_named_failures(dumped, capsys, bad, message):
    tiny_dir, refs, tmp = dumped
    write_dumps(engine_model(tiny_dir, np.float64), refs, tmp / "dumps")
    bad(tmp / "dumps" / "hello" / "ln_f.npy")
    rc, report, _ = verify(capsys, tiny_dir, refs, tmp / "dumps", tmp / "map.json")
    fd = report["runs"][0]["first_divergence"]
    assert rc == 1 and fd["name"] == "ln_f" and fd["case"] == "hello" and message in fd["message"], fd
    assert str(tmp / "dumps" / "hello" / "ln_f.npy") in fd["message"], fd  # the file is named


@pytest.mark.parametrize("write, dtype", [
    (lambda p: np.save(p, np.arange(3)), "int64"),
    (lambda p: np.savez(open(p, "wb"), a=np.zeros(2)), "NpzFile"),  # an .npz archive under the .npy name
])  # fmt: skip
def test_a_dump_file_that_holds_no_floats_is_named_with_what_it_holds(tmp_path, write, dtype):
    from gpt2core.verification.dumps import read_npy

    path = tmp_path / "ln_f.npy"
    write(path)
    with pytest.raises(DumpError) as raised:
        read_npy(path)
    assert str(raised.value) == f"dump file {path}: dtype {dtype}, expected floats (or uint16 holding bfloat16 bits)"
    for ok in (np.zeros(2, np.float32), np.zeros(2, np.uint16)):  # floats, or bfloat16's bits
        np.save(path, ok)
        assert read_npy(path).dtype == ok.dtype


def test_a_dump_files_dtype_outside_its_precision_class_is_named_with_what_the_class_allows():
    from gpt2core.verification.dumps import file_values
    from gpt2core.verification.precision.classes import precision_class

    with pytest.raises(DumpError) as raised:
        file_values(np.zeros(2, np.float64), precision_class("bfloat16"), "d/ln_f.npy")
    assert str(raised.value) == ("dump file d/ln_f.npy: dtype float64, the map declares precision bfloat16 (its files: "
                                 "bfloat16 (raw bits in a uint16 file), float32)")  # fmt: skip
    bits = np.array([0x3F80, 0xC000], np.uint16)  # bfloat16 1.0 and -2.0
    assert file_values(bits, precision_class("bfloat16"), "d/ln_f.npy").tolist() == [1.0, -2.0]


TOY_CONFIG = SimpleNamespace(n_head=2, head_dim=4, n_embd=8, mlp_width=32, vocab_size=50)  # sizes all distinct


def spec_of(layout: str, **flags) -> dict:
    """A checked map's spec of one checkpoint: `layout`, nothing selected, the flags given (others false); `select`
    may be given too."""
    return {"layout": layout, "select": {}, "key_window": False, "vocab_padded": False, **flags}


def toy_case(rows: int) -> SimpleNamespace:
    """A case of `rows` rows of 3 tokens, no padding: all to_canonical reads of one."""
    return SimpleNamespace(input_ids=np.zeros((rows, 3), np.int64), attention_mask=None)


@pytest.mark.parametrize("kind, layout, rows, shape, said", [
    ("ln_f", "b t c", 1, (2, 3, 8), "shape [2, 3, 8] does not fit layout 'b t c' with b=1 x t=3 x c=8 (Shape mismatch, 2 != 1)"),  # a row too many
    ("ln_f", "b t c", 1, (1, 4, 8), "shape [1, 4, 8] does not fit layout 'b t c' with b=1 x t=3 x c=8 (Shape mismatch, 4 != 3)"),  # a position too many
    ("ln_f", "t c", 2, (3, 8), "layout 't c' has no batch axis, but the case has 2 rows"),
    ("logits", "b t v", 1, (1, 3, 51), "shape [1, 3, 51] does not fit layout 'b t v' with b=1 x t=3 x v=50 (Shape mismatch, 51 != 50)"),  # the vocabulary
    ("mlp_fc", "b t c", 1, (1, 3, 8), "shape [1, 3, 8] does not fit layout 'b t c' with b=1 x t=3 x c=32 (Shape mismatch, 8 != 32)"),  # the MLP's width
    ("attn_probs", "b h t s", 1, (1, 2, 3, 4), "shape [1, 2, 3, 4] does not fit layout 'b h t s' with b=1 x h=2 x t=3 x s=3 (Shape mismatch, 4 != 3)"),  # a key too many
])  # fmt: skip
def test_a_dump_whose_sizes_are_not_the_cases_is_named_with_the_sizes_expected(kind, layout, rows, shape, said):
    """Every size of a left-padded dump is checked against the case (rows, positions) and the model (width)
    before anything is compared: a wrong size is a DumpError naming the file, never a reshaped guess."""
    from gpt2core.verification.dumps import to_canonical

    case, config = toy_case(rows), TOY_CONFIG
    spec = spec_of(layout)
    with pytest.raises(DumpError) as raised:
        to_canonical(np.zeros(shape), spec, kind, case, "left-padded", config, "d/ln_f.npy")
    assert str(raised.value) == f"dump file d/ln_f.npy: {said}"  # with einops' own reason, its last line


def test_a_fused_file_with_a_layer_axis_selects_both():
    """A file holding every layer's fused q, k and v ("l b t (three h d)"): select l and three, the rest rearranged."""
    from gpt2core.verification.dumps import to_canonical

    case, config = toy_case(1), TOY_CONFIG
    fused = np.arange(2 * 1 * 3 * 24, dtype=np.float64).reshape(2, 1, 3, 24)
    spec = spec_of("l b t (three h d)", select={"l": 1, "three": 2})
    out = to_canonical(fused, spec, "v", case, "left-padded", config, "d/qkv.npy")
    assert np.array_equal(out, fused[1, :, :, 16:].reshape(1, 3, 2, 4).transpose(0, 2, 1, 3))  # [B, H, T, D]


@pytest.mark.parametrize("width", [50, 64])
def test_padded_logits_are_cut_to_the_vocabulary(width):
    """vocab_padded: logits [.., width >= V] -> their first V; exactly V (no padding written) is read as is."""
    from gpt2core.verification.dumps import to_canonical

    logits = np.arange(3 * width, dtype=np.float64).reshape(1, 3, width)
    out = to_canonical(logits, spec_of("b t v", vocab_padded=True), "logits", toy_case(1), "left-padded", TOY_CONFIG, "d/l.npy")
    assert np.array_equal(out, logits[..., :50])


def test_padded_logits_narrower_than_the_vocabulary_are_named():
    from gpt2core.verification.dumps import to_canonical

    with pytest.raises(DumpError) as raised:
        to_canonical(np.zeros((1, 3, 49)), spec_of("b t v", vocab_padded=True), "logits", toy_case(1), "left-padded",
                     TOY_CONFIG, "d/l.npy")  # fmt: skip
    assert str(raised.value) == "dump file d/l.npy: 49 logits per position, fewer than the vocabulary's 50"


@pytest.mark.parametrize(("kind", "layout", "shape", "cut"), [
    ("k", "b h s d", (1, 2, 5, 4), lambda a: a[:, :, :2]),  # keys on axis 2 of [B, H, S, D]
    ("v", "b h s d", (1, 2, 5, 4), lambda a: a[:, :, :2]),
    ("attn_probs", "b h t s", (1, 2, 3, 5), lambda a: a[..., :2]),  # on the last axis of [B, H, T, S]
])  # fmt: skip
def test_a_decoding_steps_key_window_is_cut_to_the_steps_keys(kind, layout, shape, cut):
    """A step with 2 keys written into a window of 5 positions: the first 2 are the step's, the rest is ignored;
    a window of 1 cannot hold them and is named."""
    from gpt2core.verification.dumps import to_canonical

    window = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    spec = spec_of(layout, key_window=True)
    out = to_canonical(window, spec, kind, toy_case(1), "left-padded", TOY_CONFIG, "d/w.npy", keys=2)
    assert np.array_equal(out, cut(window)) and out.flags.c_contiguous
    exact = cut(window)  # a window of exactly the step's keys
    assert np.array_equal(to_canonical(exact, spec, kind, toy_case(1), "left-padded", TOY_CONFIG, "d/w.npy", keys=2), exact)
    short = window[:, :, :1] if kind in ("k", "v") else window[..., :1]
    with pytest.raises(DumpError) as raised:
        to_canonical(short, spec, kind, toy_case(1), "left-padded", TOY_CONFIG, "d/w.npy", keys=2)
    assert str(raised.value) == "dump file d/w.npy: a key window of 1 positions; the step needs 2"


def test_a_decoding_step_without_a_window_has_exactly_its_keys():
    """keys=2 without key_window: the key axis must be 2 long (the step's keys), and the array is taken whole."""
    from gpt2core.verification.dumps import to_canonical

    probs = np.arange(12, dtype=np.float64).reshape(1, 2, 3, 2)
    out = to_canonical(probs, spec_of("b h t s"), "attn_probs", toy_case(1), "left-padded", TOY_CONFIG, "d/p.npy", keys=2)
    assert np.array_equal(out, probs)
    with pytest.raises(DumpError, match=r"with b=1 x h=2 x t=3 x s=2 \(Shape mismatch, 3 != 2\)"):
        to_canonical(np.zeros((1, 2, 3, 3)), spec_of("b h t s"), "attn_probs", toy_case(1), "left-padded", TOY_CONFIG,
                     "d/p.npy", keys=2)  # fmt: skip


def test_a_full_pass_key_window_and_a_right_padded_engine_are_brought_to_the_cases_padding():
    """Without keys (the chained pass), a key window or a batch laid out otherwise goes through to_left_padded:
    a right-padded row's tokens move to the end, NaN where the case pads."""
    from gpt2core.verification.dumps import to_canonical

    case = SimpleNamespace(input_ids=np.zeros((2, 3), np.int64), attention_mask=np.array([[1, 1, 1], [0, 1, 1]]))
    ln = np.arange(2 * 3 * 8, dtype=np.float64).reshape(2, 3, 8)
    out = to_canonical(ln, spec_of("b t c"), "ln_f", case, "right-padded", TOY_CONFIG, "d/ln.npy")
    assert np.array_equal(out[0], ln[0]) and np.array_equal(out[1, 1:], ln[1, :2]) and np.isnan(out[1, 0]).all()
    with pytest.raises(DumpError) as raised:  # rows of 3 and 2 tokens in a position axis of 2
        to_canonical(ln[:, :2], spec_of("b t c"), "ln_f", case, "right-padded", TOY_CONFIG, "d/ln.npy")
    assert str(raised.value) == "dump file d/ln.npy: its position axis has 2 entries; row 0 of the case (right-padded) needs 3"
    window = np.arange(2 * 2 * 3 * 5, dtype=np.float64).reshape(2, 2, 3, 5)
    out = to_canonical(window, spec_of("b h t s", key_window=True), "attn_probs", case, "left-padded", TOY_CONFIG, "d/p.npy")
    assert out.shape == (2, 2, 3, 3) and np.array_equal(out[0], window[0, :, :, :3])  # the case's 3 keys, not the window's 5
    assert np.array_equal(out[1, :, 1:, 1:], window[1, :, 1:3, 1:3]) and np.isnan(out[1, :, 0]).all()  # row 1 pads position 0


@pytest.mark.parametrize("layer", [2, -1])
def test_a_selected_index_outside_its_axis_is_named(layer):
    """select l=2 of a file of 2 layers (or l=-1, which NumPy would read as the last): a DumpError, not another layer."""
    from gpt2core.verification.dumps import to_canonical

    spec = spec_of("l b t (three h d)", select={"l": layer, "three": 0})
    with pytest.raises(DumpError) as raised:
        to_canonical(np.zeros((2, 1, 3, 24)), spec, "q", toy_case(1), "left-padded", TOY_CONFIG, "d/qkv.npy")
    assert str(raised.value) == f"dump file d/qkv.npy: select l={layer}, but the axis has 2 entries"


def bf16(a):
    """float32 values rounded to bfloat16's 8-bit significand (round to nearest even), kept as float32."""
    bits = a.astype(np.float32).view(np.uint32)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.view(np.float32)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_a_half_precision_engine_is_held_to_its_class_budgets(tiny_dir, tmp_path, tmp_path_factory, capsys, precision):
    """Dumps rounded to half precision (float16 files; bfloat16 as raw bits in uint16 files) pass against float32
    references within their class's measured budgets, each checkpoint's tolerance being exactly
    max(floor * max|ref|, BUDGET_FACTOR * the stored honest error); the same dumps with an error of 3x the
    budget on h0.mlp_out fail there."""
    from support.references import reference_set

    from gpt2core.verification.precision.budgets import budgets_for
    from gpt2core.verification.precision.classes import precision_class

    refs = reference_set(tiny_dir, np.float32, tmp_path_factory)
    model = engine_model(tiny_dir, np.float32)
    for broken in (False, True):
        budgets = budgets_for(refs, precision) if broken else None  # stored by the clean run
        out = tmp_path / f"dumps-{broken}"
        for case in refs.cases:
            rec = {}
            model.forward(case.input_ids, case.attention_mask, checkpoints=rec)
            (out / case.name).mkdir(parents=True)
            for name, array in rec.items():
                if name.rsplit(".", 1)[-1] not in ("logits", "mlp_out", "ln_1"):  # what the map below provides
                    continue
                if broken and name == "h0.mlp_out":
                    array = array + 3 * budgets.atol(case.name, name)
                raw = array.astype(np.float16) if precision == "float16" else (bf16(array).view(np.uint32) >> 16).astype("<u2")
                np.save(out / case.name / f"{name}.npy", raw)
        dump_map = {"format": FORMAT, "engine": precision, "dtype": precision,
                    "checkpoints": {"logits": {}, "h{i}.mlp_out": {}, "h{i}.ln_1": {}}}  # fmt: skip
        (tmp_path / "map.json").write_text(json.dumps(dump_map))
        rc, report, err = verify(capsys, tiny_dir, refs, out, tmp_path / "map.json")
        run = report["runs"][0]
        assert run["dtype"] == "float32" and run["precision"] == precision and run["budgets"]["calibrated"]
        rows = {r["name"]: r for r in run["checkpoints"]}
        held = budgets_for(refs, precision)
        logits = rows["logits"]["chained"]
        scale = np.abs(refs.case(logits["case"]).array("logits")).max()
        assert logits["tolerance"] == pytest.approx(max(precision_class(precision).floor * scale, held.atol(logits["case"], "logits")))
        if broken:
            assert rc == 1 and run["first_divergence"]["name"] == "h0.mlp_out", run["first_divergence"]
        else:
            assert rc == 0 and 0.001 < run["worst_margin"] < 1, (err, run["worst_margin"])


@pytest.mark.parametrize(("args", "message"), [
    (["--dumps", "DIR"], "--dumps needs --map MAP"),
    (["--map", "MAP"], "--map describes dumps"),
    (["--dumps", "DIR", "--map", "MAP"], "--dumps needs --references DIR"),
    (["--subject", "a:b", "--subject-cmd", "x {dumps}", "--map", "MAP"], "--subject and --subject-cmd name two subjects"),
    (["--subject", "no_colon"], "'no_colon' is not MODULE:FACTORY"),
    (["--subject-cmd", "x", "--map", "MAP"], "must contain {dumps}"),
    (["--timeout", "0", "--subject-cmd", "x {dumps}", "--map", "MAP"], "argument --timeout: 0 is outside (0, inf) seconds"),
    (["--subject-cmd", "x {dumps}", "--map", "MAP", "--dtype", "float64"], "the map declares a float32 engine"),
])  # fmt: skip
def test_contradictory_or_incomplete_subject_arguments_are_one_line_errors(tiny_dir, tmp_path, capsys, args, message):
    (tmp_path / "MAP").write_text(json.dumps({"format": FORMAT, "checkpoints": {"logits": {}}}))
    (tmp_path / "DIR").mkdir()
    args = [str(tmp_path / a) if a in ("MAP", "DIR") else a for a in args]
    try:
        rc = main(["verify", "--model", str(tiny_dir), *args])
    except SystemExit as e:  # argparse's own checks exit
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_lazy_checkpoints_read_a_file_only_when_it_is_looked_up():
    from gpt2core.verification.dumps import LazyCheckpoints

    reads = []
    lazy = LazyCheckpoints({"logits", "embeddings", "h0.q"}, lambda name: reads.append(name) or name.upper())
    assert "h0.q" in lazy and "h1.q" not in lazy and len(lazy) == 3 and reads == []
    assert list(lazy) == ["embeddings", "h0.q", "logits"] and reads == []  # sorted names, nothing read
    assert lazy["h0.q"] == "H0.Q" and reads == ["h0.q"]
    with pytest.raises(KeyError, match="h1.q"):
        lazy["h1.q"]
    assert reads == ["h0.q"]


def test_a_map_file_is_read_and_its_problems_name_it(tmp_path):
    path = tmp_path / "engine.map.json"
    with pytest.raises(DumpError, match=f"^map file not found: {path}$"):
        DumpMap.from_file(path)
    path.write_text("{not json")
    with pytest.raises(DumpError, match=rf"^{path}: not valid JSON \(Expecting property name"):
        DumpMap.from_file(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(DumpError, match=rf"^{path}: not valid JSON \("):
        DumpMap.from_file(path)
    path.write_text(json.dumps({**MAP, "runs": {"batch": "yes"}}))
    with pytest.raises(DumpError, match=rf"^{path}: runs must be an object of booleans"):
        DumpMap.from_file(path)
    path.write_text(json.dumps(MAP))
    assert DumpMap.from_file(path).engine == MAP["engine"]
