"""Real batches and real layouts: padding is never compared, and a map describes what deployed engines write.

The dumps here are gpt2core's own engine's checkpoints (float64, the tiny model, every built-in case, the
left-padded batch included), rewritten the way deployed engines lay them out: right-padded or packed rows,
every layer in one stacked file, every other layer, a KV-cache window longer than the case, scores before
the 1/sqrt(d) scale, a finite mask value. Whatever the layout, padding positions hold garbage (NaN, 1e30):
a correct engine must pass, and one wrong value at a real position must fail where it is.
"""

from __future__ import annotations


import numpy as np
import pytest
from support.layouts import RightPadded, engine_layout
from support.models import engine_checkpoints, engine_model

from gpt2core.verification.batch_layout import token_mask
from gpt2core.verification.dumps import FORMAT, DumpMap, DumpSubject
from gpt2core.verification.errors import DumpError
from gpt2core.verification.numpy_subject import NumpySubject
from gpt2core.verification.subject import LAYER_CHECKPOINTS, axes_of
from gpt2core.verification.tolerances import KL_FLOOR
from gpt2core.verification.verify import verify_references

GARBAGE = (np.nan, 1e30)


@pytest.fixture(scope="module")
def setup(tiny_dir, tmp_path_factory):
    from support.references import reference_set

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    model = engine_model(tiny_dir, np.float64)
    return refs, model, engine_checkpoints(model, refs.cases)


def write_case_dumps(recs, refs, out, layout="left-padded", window=0, garbage=np.nan, transform=None):
    """Every checkpoint of every case as `{case}/{name}.npy`, in `layout`; transform(name, array) may change one."""
    for case in refs.cases:
        tokens = token_mask(case)
        (out / case.name).mkdir(parents=True, exist_ok=True)
        for name, array in recs[case.name].items():
            array = array.copy()
            if transform is not None:
                array = transform(name, array, case)
            np.save(out / case.name / f"{name}.npy", engine_layout(name, array, tokens, layout, window, garbage))


def run(tiny_dir, refs, dumps, dump_map: dict, require="offered"):
    subject = DumpSubject(dumps, DumpMap(dump_map), read_config(tiny_dir))
    return verify_references(subject, refs, require=require)


def read_config(tiny_dir):
    from gpt2core.verification.model_dir import read_model_dir

    return read_model_dir(tiny_dir).config


def full_map(**top):
    return {"format": FORMAT, "engine": "layout test", "dtype": "float64", **top,
            "checkpoints": {n: {} for n in ["embeddings", *(f"h{{i}}.{k}" for k in LAYER_CHECKPOINTS), "ln_f", "logits"]}}  # fmt: skip


def every_entry_compared(run_, refs):
    """The entries a run compared = the entries at real tokens, counted independently of the code under test."""
    expected = 0
    for case in refs.cases:
        mask = token_mask(case)
        real = int(mask.sum())
        per_row = mask.sum(axis=1)
        for name in refs.checkpoint_names:
            shape = case.array(name).shape
            axes = axes_of(name)
            if "key" in axes:  # query x key pairs within each row
                expected += int((per_row**2).sum()) * shape[1]
            elif axes[1] == "head":  # q: [B, H, T, D]
                expected += real * shape[1] * shape[3]
            else:
                expected += real * shape[-1]
    return run_["entries_compared"] == expected, (run_["entries_compared"], expected)


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_at_padding_positions_only_passes(tiny_dir, setup, tmp_path, garbage):
    refs, _, recs = setup
    write_case_dumps(recs, refs, tmp_path, garbage=garbage)
    result = run(tiny_dir, refs, tmp_path, full_map())
    assert result["verdict"] == "PASS", result["first_divergence"]
    assert result["cases_run"] == [c.name for c in refs.cases] and not result["cases_not_run"]
    assert every_entry_compared(result, refs)
    assert result["entries_excluded"] > 0  # the padded batch's padding


@pytest.mark.parametrize("garbage", GARBAGE)
def test_the_same_garbage_at_one_real_position_fails_and_names_it(tiny_dir, setup, tmp_path, garbage):
    refs, _, recs = setup
    batch = refs.case("padded_batch")
    b = 1  # "Hello.": two tokens, the rest padding
    t = int(np.argmax(batch.attention_mask[b]))  # its first real position

    def spoil(name, array, case):
        if case.name == "padded_batch" and name == "h1.mlp_fc":
            array[b, t, 5] = garbage
        return array

    write_case_dumps(recs, refs, tmp_path, garbage=garbage, transform=spoil)
    result = run(tiny_dir, refs, tmp_path, full_map())
    fd = result["first_divergence"]
    assert result["verdict"] == "FAIL" and fd["name"] == "h1.mlp_fc" and fd["case"] == "padded_batch", fd
    if np.isnan(garbage):
        assert f"non-finite value at batch {b}, position {t}, channel 5" in fd["message"]
    else:
        assert f"worst at layer 1, batch {b}, position {t}, channel 5" in fd["message"]


@pytest.mark.parametrize("convention", ["min", "-inf", {"at_or_below": -1e9}])
def test_a_future_key_left_unmasked_still_fails(tiny_dir, setup, tmp_path, convention):
    """Masked entries between real tokens are defined: a score at a future key that holds a number fails
    in every convention that says scores are masked."""
    refs, _, recs = setup
    value = -1e10 if isinstance(convention, dict) else {"min": np.finfo(np.float64).min, "-inf": -np.inf}[convention]

    def convert(name, array, case, leak):
        if name.endswith("attn_scores"):
            array[array == np.finfo(array.dtype).min] = value
            if leak and case.name == "sentence" and name == "h0.attn_scores":
                array[0, 2, 3, 7] = 0.25  # query 3 sees key 7
        return array

    for leak in (False, True):
        out = tmp_path / str(leak)
        write_case_dumps(recs, refs, out, transform=lambda n, a, c: convert(n, a, c, leak))
        result = run(tiny_dir, refs, out, full_map(masked_scores=convention))
        if not leak:
            assert result["verdict"] == "PASS", result["first_divergence"]
            continue
        fd = result["first_divergence"]
        assert result["verdict"] == "FAIL" and (fd["name"], fd["case"]) == ("h0.attn_scores", "sentence"), fd
        assert "batch 0, head 2, query 3, key 7" in fd["message"], fd


def test_a_masked_score_below_the_threshold_is_masked_and_above_it_fails(tiny_dir, setup, tmp_path):
    refs, _, recs = setup

    def convert(name, array, case):
        if name.endswith("attn_scores"):
            array[array == np.finfo(array.dtype).min] = -1e4  # fp16 engines mask with -1e4 or -65504
        return array

    write_case_dumps(recs, refs, tmp_path, transform=convert)
    assert run(tiny_dir, refs, tmp_path, full_map(masked_scores={"at_or_below": -1e4}))["verdict"] == "PASS"
    result = run(tiny_dir, refs, tmp_path, full_map(masked_scores={"at_or_below": -1e5}))
    assert result["verdict"] == "FAIL" and "a masked score is not at or below -100000.0" in result["first_divergence"]["message"]


def per_layer_kinds(*kinds):
    return [f"h{{i}}.{k}" for k in (kinds or LAYER_CHECKPOINTS)]


def write_stacked(recs, refs, out, n_layer, layers, offset=0):
    """Every per-layer checkpoint of `layers` stacked into one file per kind: [l, B, ...] (index k + offset)."""
    for case in refs.cases:
        (out / case.name).mkdir(parents=True, exist_ok=True)
        for kind in LAYER_CHECKPOINTS:
            arrays = [recs[case.name][f"h{i}.{kind}"] for i in layers]
            pad = [np.full_like(arrays[0], np.nan)] * offset
            np.save(out / case.name / f"{kind}.npy", np.stack(pad + arrays))
        for name in ("embeddings", "ln_f", "logits"):
            np.save(out / case.name / f"{name}.npy", recs[case.name][name])


def test_a_stacked_layer_axis(tiny_dir, setup, tmp_path):
    refs, model, recs = setup
    L = model.config.n_layer
    write_stacked(recs, refs, tmp_path, L, range(L))
    dump_map = full_map()
    for kind in LAYER_CHECKPOINTS:
        layout = "l " + " ".join({"batch": "b", "head": "h", "position": "t", "query": "t", "key": "s", "dim": "d",
                                  "channel": "c"}[a] for a in LAYER_CHECKPOINTS[kind])  # fmt: skip
        dump_map["checkpoints"][f"h{{i}}.{kind}"] = {"file": f"{{case}}/{kind}.npy", "layout": layout}
    result = run(tiny_dir, refs, tmp_path, dump_map)
    assert result["verdict"] == "PASS" and result["checkpoints_provided"] == result["checkpoints_total"]
    assert any("layer axis l" in n for n in result["notes"])
    # the layers in the wrong order are caught
    for case in refs.cases:
        for kind in LAYER_CHECKPOINTS:
            f = tmp_path / case.name / f"{kind}.npy"
            np.save(f, np.load(f)[::-1])
    assert run(tiny_dir, refs, tmp_path, dump_map)["first_divergence"]["name"] == "h0.ln_1"


def test_every_other_layer_with_an_offset(tiny_dir, setup, tmp_path):
    """An engine that dumps layers 0, 2, ... numbered from 1, one file per layer, and a stacked one."""
    refs, model, recs = setup
    L = model.config.n_layer
    for case in refs.cases:
        (tmp_path / case.name).mkdir()
        for i in range(0, L, 2):
            np.save(tmp_path / case.name / f"block{i + 1}.mlp_act.npy", recs[case.name][f"h{i}.mlp_act"])
        np.save(tmp_path / case.name / "logits.npy", recs[case.name]["logits"])
    dump_map = {"format": FORMAT, "dtype": "float64", "checkpoints": {
        "logits": {}, "h{i}.mlp_act": {"file": "{case}/block{i}.mlp_act.npy", "layers": {"step": 2}, "layer_offset": 1}}}
    result = run(tiny_dir, refs, tmp_path, dump_map)
    assert result["verdict"] == "PASS", result["first_divergence"]
    assert result["checkpoints_provided"] == 1 + len(range(0, L, 2))
    assert [n for n in result["not_provided"] if n.endswith("mlp_act")] == [f"h{i}.mlp_act" for i in range(1, L, 2)]
    stacked = tmp_path / "stacked"
    write_stacked(recs, refs, stacked, L, range(0, L, 2), offset=1)
    dump_map["checkpoints"]["h{i}.mlp_act"] = {"file": "{case}/mlp_act.npy", "layout": "l b t c", "layers": [0], "layer_offset": 1}
    assert run(tiny_dir, refs, stacked, dump_map)["verdict"] == "PASS"
    dump_map["checkpoints"]["h{i}.mlp_act"]["layer_offset"] = 0  # reads the NaN layer
    assert run(tiny_dir, refs, stacked, dump_map)["verdict"] == "FAIL"


KEY_LAYOUTS = {"k": "b h s d", "v": "b h s d", "attn_scores": "b h t s", "attn_probs": "b h t s"}


@pytest.mark.parametrize("layout", ["left-padded", "right-padded", "packed"])
def test_batch_layouts_with_a_key_window(tiny_dir, setup, tmp_path, layout):
    """Every checkpoint in the engine's batch layout, keys in a window 7 longer than the case, garbage at padding."""
    refs, _, recs = setup
    write_case_dumps(recs, refs, tmp_path, layout=layout, window=7, garbage=1e30)
    dump_map = full_map(batch_layout=layout)
    for name, spec in dump_map["checkpoints"].items():
        kind = name.rsplit(".", 1)[-1]
        axes = [{"batch": "b", "head": "h", "position": "t", "query": "t", "key": "s", "dim": "d", "channel": "c",
                 "token": "v"}[a] for a in axes_of("h0." + kind if name.startswith("h{i}") else name)]  # fmt: skip
        if layout == "packed":
            axes = axes[1:]
        spec["layout"] = " ".join(axes)
        if kind in KEY_LAYOUTS:
            spec["key_window"] = True
    result = run(tiny_dir, refs, tmp_path, dump_map)
    assert result["verdict"] == "PASS", result["first_divergence"]
    assert every_entry_compared(result, refs)
    assert result["cases_run"] == [c.name for c in refs.cases]
    # the same dumps read as another layout fail at the first checkpoint the padded batch holds
    other = {"left-padded": "right-padded", "right-padded": "left-padded", "packed": None}[layout]
    if other is not None:
        wrong = run(tiny_dir, refs, tmp_path, dict(dump_map, batch_layout=other))
        assert wrong["verdict"] == "FAIL" and wrong["first_divergence"]["case"] == "padded_batch"


def test_a_wrong_value_in_a_packed_row_is_found_in_its_row(tiny_dir, setup, tmp_path):
    refs, _, recs = setup
    batch = refs.case("padded_batch")
    b, t = 2, batch.input_ids.shape[1] - 1  # the last token of the third row

    def spoil(name, array, case):
        if case.name == "padded_batch" and name == "h0.attn_probs":
            array[b, 1, t, t] += 1e-9
        return array

    write_case_dumps(recs, refs, tmp_path, layout="packed", transform=spoil)
    dump_map = full_map(batch_layout="packed")
    for name, spec in dump_map["checkpoints"].items():
        kind = name.rsplit(".", 1)[-1]
        spec["layout"] = {"q": "h t d", "k": "h s d", "v": "h s d", "attn_scores": "h t s", "attn_probs": "h t s",
                          "logits": "t v"}.get(kind, "t c")  # fmt: skip
    fd = run(tiny_dir, refs, tmp_path, dump_map)["first_divergence"]
    assert (fd["name"], fd["case"]) == ("h0.attn_probs", "padded_batch"), fd
    assert f"batch {b}, head 1, query {t}, key {t}" in fd["message"], fd


def test_unscaled_scores_with_a_finite_mask(tiny_dir, setup, tmp_path):
    """Scores written as q.k (llama.cpp's kq) with -1.5e9 at masked entries: gpt2core scales the real entries
    alone and says so (scaled, a masked entry would rise above the declared threshold and be compared)."""
    refs, model, recs = setup
    D = model.config.n_embd // model.config.n_head

    def unscale(name, array, case):
        if name.endswith("attn_scores"):
            masked = array == np.finfo(array.dtype).min
            array = np.where(masked, -1.5e9, np.where(masked, 0.0, array) * np.sqrt(D))
        return array

    write_case_dumps(recs, refs, tmp_path, transform=unscale)
    dump_map = full_map(masked_scores={"at_or_below": -1e9})
    result = run(tiny_dir, refs, tmp_path, dump_map)
    assert result["verdict"] == "FAIL" and result["first_divergence"]["name"] == "h0.attn_scores"  # declared scaled
    dump_map["checkpoints"]["h{i}.attn_scores"]["unscaled"] = True
    result = run(tiny_dir, refs, tmp_path, dump_map)
    assert result["verdict"] == "PASS", result["first_divergence"]
    assert any("unscaled" in n for n in result["notes"])


def test_comments_and_version_1_maps_are_read():
    assert DumpMap({"format": "gpt2core-map/1", "_comment": "made by hand", "checkpoints": {"logits": {}}}).batch_layout == "left-padded"


def test_a_map_listing_a_layer_the_model_lacks_is_refused():
    dump_map = DumpMap({"format": FORMAT, "checkpoints": {"logits": {}, "h{i}.ln_1": {"layers": [0, 5]}}})
    with pytest.raises(DumpError, match=r"lists layers \[5\], but the model has 2"):
        dump_map.provides(2)
    with pytest.raises(DumpError, match=r"lists layers \[5\], but the model has 5"):  # layers count from 0
        dump_map.provides(5)


@pytest.mark.parametrize("layers, n_layer, provided", [
    (None, 3, [0, 1, 2]),
    ({"start": 1, "step": 2}, 6, [1, 3, 5]),
    ({"step": 3}, 7, [0, 3, 6]),
    ({"start": 2}, 5, [2, 3, 4]),
    ({}, 2, [0, 1]),
    ([4, 0], 5, [0, 4]),  # listed: sorted, the last layer included
])  # fmt: skip
def test_a_maps_layers_are_the_ones_it_says(layers, n_layer, provided):
    """A per-layer checkpoint's layers: all (no "layers"), every step-th from start (defaults 0 and 1), or a list."""
    spec = {} if layers is None else {"layers": layers}
    dump_map = DumpMap({"format": FORMAT, "checkpoints": {"logits": {}, "h{i}.ln_1": spec}})
    assert dump_map.provides(n_layer) == ["logits", *(f"h{i}.ln_1" for i in provided)]


class Conventions:
    """gpt2core's engine as a subject that writes masked scores in another convention, in every mode it runs."""

    capabilities = frozenset({"stages"})

    def __init__(self, model, masked_scores):
        self.inner, self.masked_scores = NumpySubject(model), masked_scores
        self.name = f"masked scores {masked_scores}"

    def convert(self, name, array):
        if not name.endswith("attn_scores"):
            return array
        value = -1e10 if isinstance(self.masked_scores, dict) else {"-inf": -np.inf, "not computed": 0.0}[self.masked_scores]
        return np.where(array == np.finfo(array.dtype).min, value, array)

    def checkpoints(self, case):
        return {n: self.convert(n, a) for n, a in self.inner.checkpoints(case).items()}

    def stage(self, name, case, ref):
        return self.convert(name, self.inner.stage(name, case, ref))


@pytest.mark.parametrize("convention", ["-inf", "not computed", {"at_or_below": -1e9}])
def test_the_isolated_mode_honours_the_masked_score_convention(tiny_dir, setup, convention):
    refs, model, _ = setup
    result = verify_references(Conventions(model, convention), refs)
    assert result["modes"]["isolated"] == {"ran": True, "ok": True, "why": None}, result["first_divergence"]
    assert result["verdict"] == "PASS"


def test_a_right_padded_python_subject_passes_with_its_generation(tiny_dir, setup):
    refs, model, _ = setup
    result = verify_references(RightPadded(model), refs)
    assert result["verdict"] == "PASS", result["first_divergence"]
    # the next-token distribution is read from its logits laid out as the case's: every token position counts
    d = result["distribution"]
    assert d["positions"] == sum(int(token_mask(c).sum()) for c in refs.cases) and d["kl_max"] < KL_FLOOR, d
    assert result["modes"]["generate"]["ok"] and len(result["generate"]) == sum(c.greedy is not None for c in refs.cases) >= 4
    spoiled = verify_references(RightPadded(model, spoil=True), refs)
    bad = [g for g in spoiled["generate"] if not g["ok"]]
    assert spoiled["verdict"] == "FAIL" and [g["case"] for g in bad] == ["padded_batch"]
    assert bad[0]["message"].startswith("row 1 position ")



def test_the_conformance_suite_runs_a_right_padded_subject(tiny_dir):
    """Parity, differential and invariant tests on the right-padded subject (--gpt2core-subject): it passes them."""
    from support.inprocess import run_pytest
    from support.models import CACHE

    ret, outcome = run_pytest(["--pyargs", "gpt2core.conformance", "-q", "-p", "no:cacheprovider", "-m",
                               "parity or property or invariants", "--gpt2core-subject", "support.layouts:make_right_padded",
                               "--gpt2core-dtype", "float64", "--gpt2core-cache", str(CACHE), "--gpt2core-examples", "10",
                               "-k", "not stress"])  # fmt: skip
    failures = "\n".join(r.longreprtext[-3000:] for r in outcome.failed + outcome.errors)
    assert ret == pytest.ExitCode.OK and not failures, failures
    names = {r.nodeid.split("::")[-1].split("[")[0] for r in outcome.passed}
    assert {"test_checkpoint", "test_greedy_generation", "test_drawn_model_matches_transformers",
            "test_left_padding_with_its_mask_gives_the_unpadded_result"} <= names, names
    padded = [r for r in outcome.passed if "padded_batch" in r.nodeid and "test_checkpoint" in r.nodeid]
    assert len(padded) == 31, len(padded)  # every checkpoint of the tiny model on the padded batch


def test_to_left_padded_checks_its_input_and_keeps_the_dtype():
    """The mapping itself: rows land at the end of the case, the dtype is kept, NaN fills padding, and a token
    axis too short for a row or a wrong number of axes is a DumpError naming what was needed."""
    from gpt2core.verification.batch_layout import row_starts, to_left_padded

    tokens = np.array([[True, True, True], [False, True, True]])
    right = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # [B, T, C], row 1's tokens at 0 and 1
    out = to_left_padded(right, "h0.ln_1", tokens, "right-padded", "x.npy")
    assert out.dtype == np.float32 and out.shape == (2, 3, 2)
    assert np.array_equal(out[0], right[0]) and np.array_equal(out[1, 1:], right[1, :2]) and np.isnan(out[1, 0]).all()
    packed = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)  # no batch axis: 3 + 2 tokens
    out = to_left_padded(packed, "h0.ln_1", tokens, "packed", "x.npy")
    assert np.array_equal(out[0], packed[:3]) and np.array_equal(out[1, 1:], packed[3:])
    with pytest.raises(DumpError, match=r"^x.npy: its position axis has 4 entries; row 1 of the case \(packed\) needs 5$"):
        to_left_padded(packed[:4], "h0.ln_1", tokens, "packed", "x.npy")
    with pytest.raises(DumpError, match=r"^x.npy: 3 axes, expected 2 \(position, channel\)$"):
        to_left_padded(right, "h0.ln_1", tokens, "packed", "x.npy")
    assert row_starts(np.array([3, 2]), "left-padded", 4).tolist() == [1, 2]
    assert row_starts(np.array([3, 2]), "packed", 4).tolist() == [0, 3]
    with pytest.raises(ValueError, match=r"^batch layout 'diagonal'; expected one of left-padded, right-padded, packed$"):
        row_starts(np.array([3]), "diagonal", 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scaled_scores_scale_the_real_entries_and_leave_the_masked_as_written(dtype):
    """q.k scaled by 1/sqrt(head_dim) (head_dim 4: halved); -inf, the dtype's minimum, NaN and, with a declared
    threshold, anything at or below it are left as written (a masked entry scaled would no longer read as masked)."""
    from gpt2core.verification.dumps import scaled_scores

    low = np.finfo(dtype).min
    scores = np.array([[2.0, -3e9, -1e9, -0.5e9, -np.inf, np.nan, low]], dtype=dtype)
    with_threshold = scaled_scores(scores, 4, {"at_or_below": -1e9})
    np.testing.assert_array_equal(with_threshold, np.array([[1.0, -3e9, -1e9, -0.25e9, -np.inf, np.nan, low]], dtype=dtype))
    without = scaled_scores(scores, 4, "-inf")
    np.testing.assert_array_equal(without, np.array([[1.0, -1.5e9, -0.5e9, -0.25e9, -np.inf, np.nan, low]], dtype=dtype))
    assert with_threshold.dtype == without.dtype == dtype


def test_generated_ids_are_laid_out_left_padded_and_anything_else_is_left_to_the_shape_check():
    """ids_to_left_padded: a right-padded engine's rows (prompt then new tokens) land at the end of the case's
    width, -1 at padding; ids left-padded already, of another batch size or not 2-D come back as they are, for
    the comparison's shape check to name."""
    from gpt2core.verification.batch_layout import ids_to_left_padded

    tokens = np.array([[True, True, True], [False, True, True]])
    right = np.array([[5, 6, 7, 8], [6, 7, 8, 0]], dtype=np.int32)  # row 1: prompt 6 7, new 8, then padding
    out = ids_to_left_padded(right, tokens, "right-padded")
    assert out.tolist() == [[5, 6, 7, 8], [-1, 6, 7, 8]] and out.dtype == np.int32, out  # the engine's dtype kept
    for ids, layout in [(right, "left-padded"), (right[:1], "right-padded"), (right.T, "right-padded"),
                        (right[0], "right-padded"), (right[0, :2], "right-padded")]:  # fmt: skip
        assert ids_to_left_padded(ids, tokens, layout) is ids, (ids.shape, layout)
    assert ids_to_left_padded(np.zeros((0, 4), int), np.zeros((0, 3), bool), "right-padded").shape == (0, 7)  # no rows
