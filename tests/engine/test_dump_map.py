"""A dump map's every refusal, word for word, and what a map leaves unsaid (its defaults).

The map is the whole of what gpt2core knows about an engine's files: a map read wrongly compares the wrong
file, or the right file in the wrong layout, and a refusal that names the wrong thing sends a user to the
wrong line. So each refusal is asserted whole, on the one malformation that causes it, in process (mutmut
selects these tests for every line of DumpMap).
"""

from __future__ import annotations

import pytest

from gpt2core.verification.dumps import FORMAT, DumpMap
from gpt2core.verification.errors import DumpError

BASE = {"format": FORMAT, "checkpoints": {"logits": {}}}  # the smallest map: logits in gpt2core's layout


def layer_1(spec: dict) -> dict:
    """The checkpoints of a map that gives h{i}.ln_1 `spec` beside logits."""
    return {"checkpoints": {"logits": {}, "h{i}.ln_1": spec}}


def refusal(data) -> str:
    with pytest.raises(DumpError) as raised:
        DumpMap(data, source="map.json")
    message = str(raised.value)
    assert message.startswith("map.json: "), message  # every refusal names the map file first
    return message.removeprefix("map.json: ")


@pytest.mark.parametrize(("data", "message"), [
    ([], 'a map is a JSON object with "format": \'gpt2core-map/2\', got list'),
    ({"format": "gpt2core-map/3", "checkpoints": {"logits": {}}}, "format 'gpt2core-map/3', expected 'gpt2core-map/2'"),
    ({"checkpoints": {"logits": {}}}, "format None, expected 'gpt2core-map/2'"),
])  # fmt: skip
def test_a_map_that_is_not_one_is_refused(data, message):
    assert refusal(data) == message


@pytest.mark.parametrize(("change", "message"), [
    ({"engine": "x", "typo": 1}, "unknown key 'typo'; did you mean 'dtype'? (known: format, engine, dtype, batch_layout, runs, single_row_without_batch, masked_scores, deviations, modes, decode, checkpoints)"),
    ({"dtype": 5}, "dtype: unknown precision '5'; known: float64, float32, float16, bfloat16, int8, float32-f16kv, gguf-f16, gguf-q8_0, gguf-q4_0 (aliases: f16, q8_0, q4_0, int8_float32)"),
    ({"dtype": "int4"}, "dtype: unknown precision 'int4'; known: float64, float32, float16, bfloat16, int8, float32-f16kv, gguf-f16, gguf-q8_0, gguf-q4_0 (aliases: f16, q8_0, q4_0, int8_float32)"),
    ({"deviations": 5}, "deviations must be a list of objects, got int"),
    ({"batch_layout": "padded"}, "batch_layout 'padded'; expected one of left-padded, right-padded, packed"),
    ({"runs": [True]}, "runs must be an object of booleans 'batch' and 'padding', got [True]"),
    ({"runs": {"batch": 1}}, "runs must be an object of booleans 'batch' and 'padding', got {'batch': 1}"),
    ({"runs": {"bach": True}}, "runs: unknown key 'bach'; did you mean 'batch'? (known: batch, padding)"),
    ({"single_row_without_batch": 1}, "single_row_without_batch must be true or false"),
    ({"masked_scores": {"at_or_below": 5}}, "masked_scores {'at_or_below': 5}: the threshold must be a negative number, e.g. -1e9"),
    ({"masked_scores": "zero"}, "masked_scores 'zero'; expected one of 'min', '-inf', 'not computed' or {'at_or_below': x} (x a negative number: any score at or below it counts as masked)"),
    ({"checkpoints": []}, "'checkpoints' must be an object that provides at least 'logits'"),
    ({"checkpoints": {"h0.q": {}}}, "'checkpoints' must be an object that provides at least 'logits'"),
    ({"checkpoints": {"logits": {}, "h{i}.ln1": {}}}, "unknown checkpoint 'h{i}.ln1'; did you mean 'h{i}.ln_1'? (per-layer ones are written 'h{i}.<kind>' with kind one of ln_1, q, k, v, attn_scores, attn_probs, attn_heads, attn_out, resid_mid, ln_2, mlp_fc, mlp_act, mlp_out, out, the others embeddings, ln_f, logits)"),
    ({"checkpoints": {"logits": {}, "h0.ln_1": {}}}, "unknown checkpoint 'h0.ln_1'; did you mean 'h{i}.ln_1'? (per-layer ones are written 'h{i}.<kind>' with kind one of ln_1, q, k, v, attn_scores, attn_probs, attn_heads, attn_out, resid_mid, ln_2, mlp_fc, mlp_act, mlp_out, out, the others embeddings, ln_f, logits)"),
    ({"checkpoints": {"logits": {}, "zzzz": {}}}, "unknown checkpoint 'zzzz' (per-layer ones are written 'h{i}.<kind>' with kind one of ln_1, q, k, v, attn_scores, attn_probs, attn_heads, attn_out, resid_mid, ln_2, mlp_fc, mlp_act, mlp_out, out, the others embeddings, ln_f, logits)"),
    ({"checkpoints": {"logits": []}}, "checkpoint 'logits': expected an object with keys among ['file', 'layout', 'select', 'vocab_padded', 'key_window', 'unscaled', 'layers', 'layer_offset'], got []"),
    ({"checkpoints": {"logits": {"layuot": "t v"}}}, "checkpoint 'logits': unknown key 'layuot'; did you mean 'layout'? (known: file, layout, select, vocab_padded, key_window, unscaled, layers, layer_offset)"),
    ({"modes": "chained"}, 'modes must be a list holding "chained" and any of isolated, cached, generate, sampled, got \'chained\''),
    ({"modes": ["chained", 1]}, 'modes must be a list holding "chained" and any of isolated, cached, generate, sampled, got [\'chained\', 1]'),
    ({"modes": ["isolated"]}, 'modes must be a list holding "chained" and any of isolated, cached, generate, sampled, got [\'isolated\']'),
    ({"modes": ["chained", "cashed"]}, "unknown mode 'cashed'; did you mean 'cached'? (known: chained, isolated, cached, generate, sampled)"),
    ({"modes": ["chained", "zzzzzz"]}, "unknown mode 'zzzzzz' (known: chained, isolated, cached, generate, sampled)"),
    ({"modes": ["chained", "cached"], "batch_layout": "packed", "checkpoints": {"logits": {"layout": "t v"}}}, "the cached mode's step dumps are read left-padded; batch_layout is 'packed'"),
    ({"decode": {"checkpoints": {}}}, 'decode describes the cached mode\'s step dumps, but modes does not hold "cached"'),
    ({"modes": ["chained", "cached"], "decode": []}, 'decode must be an object {"checkpoints": {...}}, got []'),
    ({"modes": ["chained", "cached"], "decode": {"checkpoints": []}}, 'decode must be an object {"checkpoints": {...}}, got {\'checkpoints\': []}'),
    ({"modes": ["chained", "cached"], "decode": {"steps": {}}}, "decode: unknown key 'steps' (known: checkpoints)"),
    ({"modes": ["chained", "cached"], "decode": {"checkpoints": {"h{i}.k": {}}}}, "decode: checkpoint 'h{i}.k': not among the map's checkpoints (a step provides what the chained pass provides)"),
    ({"modes": ["chained", "cached"], "decode": {"checkpoints": {"logits": []}}}, "decode: checkpoint 'logits': expected an object with keys among ['file', 'layout', 'select', 'vocab_padded', 'key_window', 'unscaled', 'layers', 'layer_offset'], got []"),
    ({"modes": ["chained", "cached"], "decode": {"checkpoints": {"logits": {"fiel": "x"}}}}, "decode: checkpoint 'logits': unknown key 'fiel'; did you mean 'file'? (known: file, layout, select, vocab_padded, key_window, unscaled, layers, layer_offset)"),
    ({"modes": ["chained", "cached"], "decode": {"checkpoints": {"logits": {"file": "x.npy"}}}}, "decode: checkpoint 'logits': file 'x.npy' must be a relative path holding {case}"),
    ({"checkpoints": {"logits": {"layout": 5}}}, "checkpoint 'logits': layout must be an einops pattern and select an object of integers"),
    ({"checkpoints": {"logits": {"select": []}}}, "checkpoint 'logits': layout must be an einops pattern and select an object of integers"),
    ({"checkpoints": {"logits": {"select": {"x": 1.0}}}}, "checkpoint 'logits': layout must be an einops pattern and select an object of integers"),
    ({"checkpoints": {"logits": {"file": 5}}}, "checkpoint 'logits': file 5 must be a relative path holding {case}"),
    ({"checkpoints": {"logits": {"file": "../{case}/logits.npy"}}}, "checkpoint 'logits': file '../{case}/logits.npy' must be a relative path holding {case}"),
    ({"checkpoints": {"logits": {"file": "/{case}/logits.npy"}}}, "checkpoint 'logits': file '/{case}/logits.npy' must be a relative path holding {case}"),
    ({"checkpoints": {"logits": {"file": "logits.npy"}}}, "checkpoint 'logits': file 'logits.npy' must be a relative path holding {case}"),
    ({"checkpoints": {"logits": {"layout": "l t v"}}}, "checkpoint 'logits': layout 'l t v' has a layer axis l, but logits is not a per-layer checkpoint"),
    (layer_1({"file": "{case}/x{i}.npy", "layout": "l b t c"}), "checkpoint 'h{i}.ln_1': file '{case}/x{i}.npy' must hold {i} (one file per layer) or the layout a layer axis l (one file of every layer), not both"),
    (layer_1({"file": "{case}/x.npy"}), "checkpoint 'h{i}.ln_1': file '{case}/x.npy' must hold {i} (one file per layer) or the layout a layer axis l (one file of every layer), not both"),
    (layer_1({"file": "{case}/x.npy", "layout": "l b t c", "select": {"l": 0}}), "checkpoint 'h{i}.ln_1': the layer axis l is chosen by the layer, not by select"),
    ({"checkpoints": {"logits": {"layout": "b t x v"}}}, "checkpoint 'logits': layout 'b t x v' must name the axes 'b t v' (b may be left out) and select each other axis; missing [], not selected ['x']"),
    ({"checkpoints": {"logits": {"layout": "b t"}}}, "checkpoint 'logits': layout 'b t' must name the axes 'b t v' (b may be left out) and select each other axis; missing ['v'], not selected []"),
    ({"checkpoints": {"logits": {"layout": "t"}}}, "checkpoint 'logits': layout 't' must name the axes 'b t v' (b may be left out) and select each other axis; missing ['v'], not selected []"),
    ({"checkpoints": {"logits": {"layout": "b t Q v"}}}, "checkpoint 'logits': layout 'b t Q v' must name the axes 'b t v' (b may be left out) and select each other axis; missing [], not selected ['Q']"),
    ({"batch_layout": "packed", "checkpoints": {"logits": {"layout": "b t v"}}}, "checkpoint 'logits': layout 'b t v' has a batch axis b, but a packed batch has none (rows follow one another on the t axis)"),
    ({"checkpoints": {"logits": {"vocab_padded": 1}}}, "checkpoint 'logits': vocab_padded is a boolean, for logits only"),
    (layer_1({"vocab_padded": True}), "checkpoint 'h{i}.ln_1': vocab_padded is a boolean, for logits only"),
    (layer_1({"key_window": True}), "checkpoint 'h{i}.ln_1': key_window is a boolean, for k, v, attn_scores and attn_probs only"),
    (layer_1({"unscaled": True}), "checkpoint 'h{i}.ln_1': unscaled is a boolean, for attn_scores only"),
    ({"checkpoints": {"logits": {}, "h{i}.k": {"key_window": True, "layout": "b h t d"}}}, "checkpoint 'h{i}.k': key_window needs the key axis written s in the layout (got 'b h t d')"),
    ({"checkpoints": {"logits": {"layers": [0]}}}, "checkpoint 'logits': layers and layer_offset are for per-layer checkpoints (h{i}.<kind>)"),
    ({"checkpoints": {"logits": {"layer_offset": 0}}}, "checkpoint 'logits': layers and layer_offset are for per-layer checkpoints (h{i}.<kind>)"),
    (layer_1({"layer_offset": "1"}), "checkpoint 'h{i}.ln_1': layer_offset must be an integer, got '1'"),
    (layer_1({"layer_offset": True}), "checkpoint 'h{i}.ln_1': layer_offset must be an integer, got True"),
    (layer_1({"layers": {"stpe": 2}}), "checkpoint 'h{i}.ln_1': layers: unknown key 'stpe'; did you mean 'step'? (known: start, step)"),
    (layer_1({"layers": {"start": -1}}), "checkpoint 'h{i}.ln_1': layers {'start': -1}: start must be an integer >= 0 and step >= 1"),
    (layer_1({"layers": {"step": 0}}), "checkpoint 'h{i}.ln_1': layers {'step': 0}: start must be an integer >= 0 and step >= 1"),
    (layer_1({"layers": {"start": 1.0}}), "checkpoint 'h{i}.ln_1': layers {'start': 1.0}: start must be an integer >= 0 and step >= 1"),
    (layer_1({"layers": {"step": True}}), "checkpoint 'h{i}.ln_1': layers {'step': True}: start must be an integer >= 0 and step >= 1"),
    (layer_1({"layers": []}), "checkpoint 'h{i}.ln_1': layers must be a list of distinct layer numbers or {'start': 0, 'step': 2}, got []"),
    (layer_1({"layers": [1, 1]}), "checkpoint 'h{i}.ln_1': layers must be a list of distinct layer numbers or {'start': 0, 'step': 2}, got [1, 1]"),
    (layer_1({"layers": [-1]}), "checkpoint 'h{i}.ln_1': layers must be a list of distinct layer numbers or {'start': 0, 'step': 2}, got [-1]"),
    (layer_1({"layers": [1.0]}), "checkpoint 'h{i}.ln_1': layers must be a list of distinct layer numbers or {'start': 0, 'step': 2}, got [1.0]"),
    (layer_1({"layers": "all"}), "checkpoint 'h{i}.ln_1': layers must be a list of distinct layer numbers or {'start': 0, 'step': 2}, got 'all'"),
])  # fmt: skip
def test_each_malformation_of_a_map_is_refused_in_its_own_words(change, message):
    assert refusal({**BASE, **change}) == message


def test_what_a_map_leaves_unsaid():
    """The defaults: a float32 engine named "engine", left-padded batches it runs whole, masked scores at the
    dtype's minimum, the chained mode alone, each checkpoint in gpt2core's layout at {case}/<name>.npy."""
    m = DumpMap({**BASE, "checkpoints": {"logits": None, "h{i}.k": {}}})
    assert (m.engine, m.dtype, m.precision.name, m.batch_layout) == ("engine", "float32", "float32", "left-padded")
    assert (m.runs_batch, m.runs_padding, m.single_row_without_batch, m.masked_scores) == (True, True, False, "min")
    assert m.modes == ("chained",) and m.deviations == () and m.decode_specs == m.specs
    plain = {"select": {}, "layers": None, "layer_offset": 0, "vocab_padded": False, "key_window": False, "unscaled": False}
    assert m.specs == {"logits": {"file": "{case}/logits.npy", "layout": "b t v", **plain},
                       "h{i}.k": {"file": "{case}/h{i}.k.npy", "layout": "b h s d", **plain}}  # fmt: skip
    assert m.provides(2) == ["logits", "h0.k", "h1.k"] and m.notes() == []


def test_what_a_map_says_is_kept():
    """Every key as given, a decode override replacing only its checkpoint's spec, and a note per transformation."""
    k = {"file": "{case}/kv.npy", "layout": "l b s (two h d)", "select": {"two": 0}, "key_window": True}
    scores = {"file": "{case}/s{i}.npy", "layout": "b h t s", "unscaled": True, "layers": {"start": 1, "step": 2},
              "layer_offset": 1}  # fmt: skip
    m = DumpMap({"format": FORMAT, "engine": "mine", "dtype": "float16", "runs": {"batch": False, "padding": False},
                 "single_row_without_batch": True, "masked_scores": "-inf", "modes": ["chained", "cached", "sampled"],
                 "checkpoints": {"logits": {"layout": "b t v", "vocab_padded": True}, "h{i}.k": k, "h{i}.attn_scores": scores},
                 "decode": {"checkpoints": {"logits": {"file": "{case}/step_logits.npy"}}}})  # fmt: skip
    assert (m.engine, m.precision.name, m.runs_batch, m.runs_padding) == ("mine", "float16", False, False)
    assert (m.single_row_without_batch, m.masked_scores, m.modes) == (True, "-inf", ("chained", "cached", "sampled"))
    assert m.specs["h{i}.k"] == {"layers": None, "layer_offset": 0, "vocab_padded": False, "unscaled": False, **k}
    assert m.specs["h{i}.attn_scores"] == {"select": {}, "vocab_padded": False, "key_window": False, **scores}
    assert m.specs["logits"]["vocab_padded"] and m.decode_specs["h{i}.k"] == m.specs["h{i}.k"]
    assert m.decode_specs["logits"] == {**m.specs["logits"], "file": "{case}/step_logits.npy", "layout": "b t v",
                                        "vocab_padded": False}  # fmt: skip
    assert m.provides(4) == ["logits", "h0.k", "h1.k", "h2.k", "h3.k", "h1.attn_scores", "h3.attn_scores"]
    assert m.notes() == [
        "h{i}.k: one file of every layer ({case}/kv.npy, layer axis l)",
        "h{i}.k: a key window; the case's keys are compared, the rest of the window ignored",
        "h{i}.attn_scores: written unscaled (q.k); gpt2core multiplies them by 1/sqrt(head size) before comparing",
    ]
    packed = DumpMap({"format": FORMAT, "batch_layout": "packed", "checkpoints": {"logits": {"layout": "t v"}}})
    assert packed.notes() == ["batch layout packed: each row's tokens are taken from where the engine put them"]


@pytest.mark.parametrize(("modes", "capabilities"), [
    (["chained"], set()),
    (["chained", "cached", "sampled"], {"decode", "sample"}),
    (["chained", "isolated", "cached", "generate", "sampled"], {"stages", "decode", "generate", "sample"}),
])  # fmt: skip
def test_a_dump_subject_is_what_its_map_says(tmp_path, modes, capabilities):
    """The command subject's name, precision, masked scores, checkpoints and capabilities are its map's, and
    a map that runs neither batches nor padding says why for each case it cannot run."""
    from types import SimpleNamespace

    import numpy as np

    from gpt2core.verification.dumps import DumpSubject

    m = DumpMap({"format": FORMAT, "engine": "mine", "dtype": "float16", "masked_scores": "-inf", "modes": modes,
                 "runs": {"batch": False, "padding": False}, "deviations": [{"checkpoints": ["logits"], "tolerance": 1e-2, "reason": "fused"}],
                 "checkpoints": {"logits": {"vocab_padded": True}, "h{i}.attn_scores": {"unscaled": True}}})  # fmt: skip
    s = DumpSubject(tmp_path / "dumps", m, SimpleNamespace(n_layer=2))
    assert (s.name, s.precision, s.masked_scores, s.deviations, s.notes) == ("mine", "float16", "-inf", m.deviations, m.notes())
    assert len(m.deviations) == 1 and s.provides == {"logits", "h0.attn_scores", "h1.attn_scores"}
    assert s.capabilities == capabilities
    assert s.files_read == set() and s.files_not_read() == []  # no directory yet: nothing written, nothing unread
    one_row, two_rows = np.zeros((1, 4), np.int64), np.zeros((2, 4), np.int64)
    padded = np.array([[0, 1, 1, 1]])
    assert s.can_run(SimpleNamespace(input_ids=one_row, attention_mask=None)) is None
    assert s.can_run(SimpleNamespace(input_ids=one_row, attention_mask=np.ones((1, 4)))) is None
    assert s.can_run(SimpleNamespace(input_ids=two_rows, attention_mask=None)) == (
        "2 rows, and the map says the engine runs one row at a time (runs.batch false)")
    assert s.can_run(SimpleNamespace(input_ids=one_row, attention_mask=padded)) == (
        "rows of different lengths, and the map says the engine runs no padded batch (runs.padding false)")
    runs_all = DumpSubject(tmp_path, DumpMap({**BASE, "runs": {"batch": True, "padding": True}}), SimpleNamespace(n_layer=2))
    assert runs_all.can_run(SimpleNamespace(input_ids=two_rows, attention_mask=np.vstack([padded, padded]))) is None


def test_a_decode_object_without_checkpoints_changes_nothing():
    """"decode": {} (or one holding only a comment) is the chained pass's specs, as no "decode" at all."""
    for decode in ({}, {"_comment": "steps as the full pass"}):
        m = DumpMap({**BASE, "modes": ["chained", "cached"], "decode": decode})
        assert m.decode_specs == m.specs and list(m.specs) == ["logits"]


@pytest.mark.parametrize(("layers", "kept", "provided"), [
    ({}, {"start": 0, "step": 1}, ["h0.ln_1", "h1.ln_1", "h2.ln_1"]),
    ({"step": 2}, {"start": 0, "step": 2}, ["h0.ln_1", "h2.ln_1"]),
    ({"start": 1}, {"start": 1, "step": 1}, ["h1.ln_1", "h2.ln_1"]),
])  # fmt: skip
def test_a_layers_object_is_kept_with_its_defaults_filled_in(layers, kept, provided):
    m = DumpMap({**BASE, **layer_1({"layers": layers})})
    assert m.specs["h{i}.ln_1"]["layers"] == kept and m.provides(3) == ["logits", *provided]


def test_a_map_given_as_an_object_is_called_map():
    """A map passed as an object (no file): its refusals start "map: "."""
    with pytest.raises(DumpError) as raised:
        DumpMap({"format": "x"})
    assert str(raised.value) == "map: format 'x', expected 'gpt2core-map/2'"


@pytest.mark.parametrize(("kind", "layout", "target"), [
    ("k", "b h s d", "b h s d"),
    ("v", "b t h d", "b h t d"),  # keys of a full pass written on the token axis t
    ("k", "t b h s d", "b h s d"),  # an s axis is the key axis even beside a t (selected)
    ("q", "b t h d", "b h t d"),
    ("attn_probs", "b h t s", "b h t s"),
])  # fmt: skip
def test_the_layout_a_dump_is_brought_to(kind, layout, target):
    from gpt2core.verification.dumps import target_layout

    assert target_layout(kind, layout) == target


@pytest.mark.parametrize(("declared", "shape", "rows", "given_back"), [
    (True, (3,), 1, (1, 3)),  # a one-row case's per-row file without its batch axis: given it back
    (True, (1, 3), 1, (1, 3)),  # written with it: as it is
    (True, (3,), 2, (3,)),  # two rows: not this map's exception, left for the shape check to name
    (False, (3,), 1, (3,)),  # the map does not say so: left for the shape check to name
])  # fmt: skip
def test_a_per_row_file_gets_its_batch_axis_back_only_where_the_map_says(tmp_path, declared, shape, rows, given_back):
    from types import SimpleNamespace

    import numpy as np

    from gpt2core.verification.dumps import DumpSubject

    s = DumpSubject(tmp_path, DumpMap({**BASE, "single_row_without_batch": declared}), SimpleNamespace(n_layer=1))
    array = np.arange(3).reshape(shape)
    out = s.with_batch_axis(array, SimpleNamespace(input_ids=np.zeros((rows, 3), np.int64)))
    assert out.shape == given_back and out.ravel().tolist() == [0, 1, 2]
