"""Engines at their own precision: precision classes, budgets measured on transformers itself, the next-token
distribution, declared deviations (WAIVED), and real low-precision engines passing their class and failing a
stricter one.

The budgets' honest implementations are transformers at float16 / bfloat16 (torch's CPU kernels) and emulated
formats (gpt2core.verification.precision.honest); their rounding is checked here against the reference
implementations (gguf-py's quantizers, from llama.cpp's own converter)."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gpt2core.cli import main
from gpt2core.verification.precision import distribution
from gpt2core.verification.precision import budgets
from gpt2core.verification.precision.budgets import budgets_for, ensure_budgets
from gpt2core.verification.precision.deviations import Deviation, parse_deviations
from gpt2core.verification.tolerances import BUDGET_FACTOR, KL_FACTOR, KL_FLOOR
from gpt2core.verification.verify import verify_references

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def tiny_refs(tiny_dir, tmp_path_factory):
    from support.references import reference_set

    return reference_set(tiny_dir, np.float32, tmp_path_factory)


@pytest.fixture
def set_copy(tiny_refs, tmp_path) -> Path:
    """A copy of the tiny float32 reference set that a test may edit (the module's own set stays as captured)."""
    return Path(shutil.copytree(tiny_refs.root, tmp_path / "set"))


def transformers_subject(model_dir, precision, fault=None):
    """transformers at `precision`, optionally with a fault in its modules: "gelu_constant:F" (GELU's sqrt(2/pi)
    times F) or "ln_eps" (every LayerNorm's epsilon 1e-3 instead of 1e-5)."""
    import torch

    from gpt2core.verification.transformers_subject import TransformersSubject

    subject = TransformersSubject(model_dir, precision)
    t = subject.model.transformer
    if fault is not None and fault.startswith("gelu_constant:"):
        factor = float(fault.split(":")[1])

        class Gelu(torch.nn.Module):
            def forward(self, x):
                return 0.5 * x * (1 + torch.tanh(factor * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

        for block in t.h:
            block.mlp.act = Gelu()
    elif fault == "ln_eps":
        for ln in [t.ln_f] + [m for b in t.h for m in (b.ln_1, b.ln_2)]:
            ln.eps = 1e-3
    return subject


# --- the honest implementations' rounding ------------------------------------------------------------------


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0"])
def test_block_quantization_matches_llama_cpps_own_quantizer(qtype):
    """q8_0 / q4_0 as gguf-py (llama.cpp's converter) quantizes and dequantizes, exactly, on blocks with
    outliers, zeros and both signs."""
    import torch
    from support.llama_cpp import gguf_py

    from gpt2core.verification.precision.honest import q4_0, q8_0

    gguf = gguf_py()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 128)) * 0.02).astype(np.float32)
    x[1, 5] = 0.9
    x[2, 32:64] = 0.0
    x[3] = -np.abs(x[3])
    kind = getattr(gguf.GGMLQuantizationType, qtype)
    theirs = gguf.quants.dequantize(gguf.quants.quantize(x, kind), kind)
    ours = (q8_0 if qtype == "Q8_0" else q4_0)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(ours, theirs)


# --- budgets ----------------------------------------------------------------------------------------------


def test_a_float32_set_carries_its_budgets_and_they_bound_the_honest_error(tiny_refs):
    """The float32 budgets written with a set hold, per checkpoint and case, transformers' float32 error against
    its float64 pass: positive where float32 rounds, and BUDGET_FACTOR times it is the budget."""
    budgets = budgets_for(tiny_refs, "float32")
    assert budgets.calibrated
    entries = budgets.doc["cases"]["sentence"]["checkpoints"]
    assert set(entries) == set(tiny_refs.checkpoint_names)
    err, scale = entries["logits"]
    assert 0 < err < 1e-5 * scale
    assert budgets.atol("sentence", "logits") == BUDGET_FACTOR * err
    assert budgets.atol("sentence", "logits@t=3,b=0") == BUDGET_FACTOR * err  # a decoding step: its checkpoint's


def test_budgets_reproduce_and_are_recomputed_by_one_command(tiny_dir, tiny_refs, capsys):
    """`gpt2core budgets --check` recomputes a class's budgets and finds the stored ones; an altered file fails."""
    assert main(["budgets", "--references", str(tiny_refs.root), "--model", str(tiny_dir), "--precision", "bfloat16"]) == 0
    table = capsys.readouterr().out
    assert "bfloat16" in table and "attn_probs" in table and "honest rel" in table
    assert main(["budgets", "--references", str(tiny_refs.root), "--model", str(tiny_dir), "--precision", "bfloat16", "--check"]) == 0
    assert "reproduced" in capsys.readouterr().out


def test_budgets_that_do_not_belong_to_the_set_are_refused(tiny_dir, set_copy):
    from gpt2core.verification.errors import ReferencesError
    from gpt2core.verification.reference_set import load_references

    manifest = json.loads((set_copy / "manifest.json").read_text())
    manifest["command"] = "edited"
    (set_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReferencesError, match="belongs to another reference set"):
        budgets_for(load_references(set_copy, tiny_dir), "float32")
    shutil.rmtree(set_copy / "budgets")
    with pytest.raises(ReferencesError) as refused:
        budgets_for(load_references(set_copy, tiny_dir), "float16")
    assert str(refused.value) == (f"{set_copy} holds no float16 budgets ({set_copy / 'budgets' / 'float16.json'}); compute them with: "
                                  f"gpt2core budgets --references {set_copy} --precision float16")  # fmt: skip


def test_budgets_that_leave_out_a_case_of_the_set_are_refused_naming_the_file_and_the_cases(tiny_dir, set_copy):
    """A budgets file of this set (its manifest's sha256) that holds no entry for some of the set's cases (edited,
    or written by hand) is refused: a case without budgets is never held to the floor alone."""
    from gpt2core.verification.errors import ReferencesError
    from gpt2core.verification.reference_set import load_references

    path = set_copy / "budgets" / "float32.json"
    doc = json.loads(path.read_text())
    names = sorted(doc["cases"])
    assert len(names) >= 2, names
    for name in names[:2]:
        del doc["cases"][name]
    path.write_text(json.dumps(doc))
    with pytest.raises(ReferencesError) as refused:
        budgets_for(load_references(set_copy, tiny_dir), "float32")
    assert str(refused.value) == f"{path} has no budgets for cases {names[:2]}"


def test_a_class_is_found_by_the_name_its_engine_gives_the_type():
    """llama.cpp's tensor types (gguf-py's GGMLQuantizationType, lower-cased as its converter's --outtype takes
    them) and CTranslate2's compute type name the classes as their users type them."""
    import ctranslate2
    from support.llama_cpp import gguf_py

    from gpt2core.verification.precision.classes import precision_class

    gguf = gguf_py()
    for qtype in ("F16", "Q8_0", "Q4_0"):
        engine_name = gguf.GGMLQuantizationType[qtype].name.lower()
        assert precision_class(engine_name) is precision_class(f"gguf-{engine_name}"), engine_name
    assert "int8_float32" in ctranslate2.get_supported_compute_types("cpu")
    assert precision_class("int8_float32") is precision_class("int8")


def test_a_class_meets_only_references_of_its_own_dtype_and_float64_is_held_to_its_floor(tiny_refs):
    """A precision class on a reference set of another dtype is refused, naming the class, both dtypes and the
    set; float64, uncalibrated, on float64 references gets the floor alone: no document, no absolute budget."""
    from gpt2core.verification.errors import ReferencesError
    from gpt2core.verification.precision.classes import precision_class

    root = tiny_refs.root
    with pytest.raises(ReferencesError) as refused:
        budgets_for(tiny_refs, "float64")
    assert str(refused.value) == f"precision float64 is compared with float64 references, not the float32 set in {root}"
    float64_set = SimpleNamespace(dtype=np.dtype("float64"), root="/nowhere/float64-set", cases=[])
    with pytest.raises(ReferencesError) as refused:
        budgets_for(float64_set, "bfloat16")
    assert str(refused.value) == "precision bfloat16 is compared with float32 references, not the float64 set in /nowhere/float64-set"
    floor = budgets_for(float64_set, "float64")
    assert not floor.calibrated and floor.doc is None and floor.distribution() is None
    assert floor.tol == {np.dtype("float64"): precision_class("float64").floor}
    assert floor.atol("any case", "logits") == 0.0


GOOD_BUDGETS = {"format": budgets.FORMAT, "precision": "float16", "references_manifest_sha256": "ab" * 32,
                "cases": {"hello": {"checkpoints": {"logits": [1e-3, 2.0]}}}}  # fmt: skip
MALFORMED_BUDGETS = [  # (what the file holds, what the error says of it)
    ([1, 2], "format [1, 2], expected 'gpt2core-budgets/1' for 'float16'"),
    ({**GOOD_BUDGETS, "format": "other/1"}, "format 'other/1' for 'float16', expected 'gpt2core-budgets/1' for 'float16'"),
    ({**GOOD_BUDGETS, "precision": "bfloat16"}, "format 'gpt2core-budgets/1' for 'bfloat16', expected 'gpt2core-budgets/1' for 'float16'"),
    ({"precision": "float16"}, "format None for 'float16', expected 'gpt2core-budgets/1' for 'float16'"),
    ({**GOOD_BUDGETS, "cases": {"hello": {"checkpoints": {"logits": [1e-3, 2.0, 3.0]}}}}, "a checkpoint's entry [0.001, 2.0, 3.0] is not [honest error, scale]"),
    ({**GOOD_BUDGETS, "cases": {"hello": {"checkpoints": {"logits": [-1e-3, 2.0]}}}}, "a checkpoint's entry [-0.001, 2.0] is not [honest error, scale]"),
    ({**GOOD_BUDGETS, "cases": {"hello": {"checkpoints": {"logits": ["1e-3", 2.0]}}}}, "a checkpoint's entry ['1e-3', 2.0] is not [honest error, scale]"),
    ({**GOOD_BUDGETS, "cases": {"hello": {"checkpoints": {"logits": 1e-3}}}}, "a checkpoint's entry 0.001 is not [honest error, scale]"),
    ({**GOOD_BUDGETS, "cases": []}, "'list' object has no attribute 'values'"),
]  # fmt: skip


@pytest.mark.parametrize("doc, says", MALFORMED_BUDGETS, ids=[f"malformed-{i}" for i in range(len(MALFORMED_BUDGETS))])
def test_a_malformed_budgets_file_is_named_with_what_is_wrong_and_how_to_remake_it(tmp_path, doc, says):
    from gpt2core.verification.errors import ReferencesError

    path = budgets.path_of(tmp_path, "float16")
    path.parent.mkdir()
    path.write_text(json.dumps(GOOD_BUDGETS))
    assert budgets.read(tmp_path, "float16", "ab" * 32) == GOOD_BUDGETS  # the well-formed file is read as written
    assert budgets.read(tmp_path, "bfloat16", "ab" * 32) is None  # no file: no budgets, not an error
    path.write_text(json.dumps(doc))
    with pytest.raises(ReferencesError) as raised:
        budgets.read(tmp_path, "float16", "ab" * 32)
    assert str(raised.value) == (f"{path}: malformed budgets ({says}); recompute them with gpt2core budgets "
                                 f"--references {tmp_path} --precision float16 --force")  # fmt: skip


def test_the_stress_model_passes_gpt2cores_float32_engine(stress_dir):
    """Sharp attention makes float32's rounding of the probabilities larger than the fixed 2e-5 of max|probs|:
    the measured budget earns it, and the engine passes in float32."""
    from gpt2core.verification.verify import verify_model

    report = verify_model(stress_dir, dtypes=("float32",), cache=False)
    (run,) = report["runs"]
    assert run["verdict"] == "PASS", run["first_divergence"]
    rows = {r["name"]: r["chained"] for r in run["checkpoints"]}
    probs = rows["h0.attn_probs"]
    assert probs["tolerance"] > 2e-5 * 1.0  # above the fixed floor on this model (max|probs| <= 1)


# --- transformers at half precision: pass their class, fail a stricter one; faults in class ----------------


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_transformers_at_half_precision_passes_its_class_and_fails_float32(tiny_dir, tiny_refs, precision):
    ensure_budgets(tiny_refs, tiny_dir, precision)
    subject = transformers_subject(tiny_dir, precision)
    run = verify_references(subject, tiny_refs)
    assert run["verdict"] == "PASS" and run["checkpoints_passed"] == len(tiny_refs.checkpoint_names), run["first_divergence"]
    assert run["distribution"]["ok"] is True and run["distribution"]["positions"] > 0
    assert 0.1 < run["worst_margin"] <= 1 / BUDGET_FACTOR * 1.01  # its own error, against BUDGET_FACTOR times it
    subject.precision = "float32"
    strict = verify_references(subject, tiny_refs)
    assert strict["verdict"] == "FAIL" and strict["first_divergence"]["name"] == "embeddings"


# GELU's constant off by 3% moves h0.mlp_act by about 2.5x float16's budget on the tiny model (its inputs are
# small: the constant acts through the cubic term); bfloat16's arithmetic is 8x coarser, so 10% there.
@pytest.mark.parametrize(("precision", "fault", "checkpoint"), [
    ("float16", "gelu_constant:1.03", "h0.mlp_act"), ("bfloat16", "gelu_constant:1.10", "h0.mlp_act"),
    ("float16", "ln_eps", "h0.ln_1"), ("bfloat16", "ln_eps", "h0.ln_1"),
])  # fmt: skip
def test_a_fault_a_few_times_the_classes_error_fails_in_that_class_at_its_checkpoint(tiny_dir, tiny_refs, precision, fault, checkpoint):
    ensure_budgets(tiny_refs, tiny_dir, precision)
    run = verify_references(transformers_subject(tiny_dir, precision, fault), tiny_refs)
    assert run["verdict"] == "FAIL" and run["first_divergence"]["name"] == checkpoint, run["first_divergence"]


# --- CTranslate2 int8 on the 124M model -------------------------------------------------------------------


def test_ctranslate2_int8_passes_its_class_with_distribution_metrics_and_fails_float32(gpt2_124m_dir, tmp_path_factory, monkeypatch):
    from support.references import reference_set

    monkeypatch.syspath_prepend(str(EXAMPLES / "ctranslate2"))
    from support.models import CACHE

    monkeypatch.setenv("GPT2CORE_HOME", str(CACHE / "gpt2core-home"))
    import ct2_subject

    refs = reference_set(gpt2_124m_dir, np.float32, tmp_path_factory)
    ensure_budgets(refs, gpt2_124m_dir, "int8")
    subject = ct2_subject.CTranslate2Subject(gpt2_124m_dir, "int8_float32")
    subject.capabilities = frozenset()  # the logits only: its greedy continuation may flip at a near-tie
    run = verify_references(subject, refs)
    assert run["precision"] == "int8" and run["verdict"] == "PASS", run["first_divergence"]
    d = run["distribution"]
    assert d["ok"] is True and 0 < d["kl_max"] <= d["budget"]["kl_max"] and 0.5 <= d["top1_agreement"] <= 1
    subject.precision = "float32"
    strict = verify_references(subject, refs)
    assert strict["verdict"] == "FAIL" and strict["first_divergence"]["name"] == "logits"


# --- declared deviations ----------------------------------------------------------------------------------


def test_a_declared_deviation_is_waived_in_text_json_and_junit_and_never_complete(tiny_dir, tiny_refs, tmp_path):
    """transformers in float16 declared float32 fails from the embeddings on; a deviation covering every
    checkpoint from there within 1e-2 makes it WAIVED (not PASS) in every report, and INCOMPLETE under --require all."""
    from gpt2core.report import format_verify, write_junit

    subject = transformers_subject(tiny_dir, "float16")
    subject.precision = "float32"
    subject.deviations = [{"checkpoints": "embeddings", "tolerance": 1e-2, "reason": "float16 arithmetic", "and_after": True}]
    run = verify_references(subject, tiny_refs)
    assert run["verdict"] == "PASS" and run["waived"] and run["checkpoints_waived"] > 0
    waived = run["waived"][0]
    assert waived["reason"] == "float16 arithmetic" and waived["margin"] > 1 and waived["max_rel"] <= 1e-2
    text = format_verify({"verdict": run["verdict"], "runs": [run]})
    assert "WAIVED embeddings" in text and "float16 arithmetic" in text and "WAIVED)" in text
    path = tmp_path / "junit.xml"
    write_junit({"runs": [run]}, path)
    xml = path.read_text()
    assert "<failure" not in xml and "WAIVED" in xml and "<skipped" in xml
    strict = verify_references(subject, tiny_refs, require="all")
    assert strict["verdict"] == "INCOMPLETE" and not strict["complete"]
    write_junit({"runs": [strict]}, path)
    assert "<failure" in path.read_text()
    subject.deviations = [{"checkpoints": "embeddings", "tolerance": 1e-6, "reason": "too tight"}]
    assert verify_references(subject, tiny_refs)["verdict"] == "FAIL"  # beyond the declared tolerance: a failure


@pytest.mark.parametrize("held", ["unmeetable", "generous", "none"])
def test_a_waiver_of_the_logits_covers_their_distribution_only_where_it_fails(held, tiny_dir, tiny_refs, monkeypatch):
    """The logits off by 1e-2 on one case, declared within 0.5: their next-token distribution, out of its budget, is
    WAIVED with the logits' reason and the run passes; within its budget, or not judged, it is left as it is."""
    import gpt2core.verification.verify as verify_module
    from support.verdict_subjects import Altered

    from support.engine_memo import numpy_subject

    inner = numpy_subject(tiny_dir, "float32")

    def checkpoints(case):
        out = dict(inner.checkpoints(case))
        if case.name == "hello":
            out["logits"] = out["logits"] + 1e-2  # a constant shift: the distribution itself is unchanged
        return out

    subject = Altered(inner, checkpoints=checkpoints, deviations=[{"checkpoints": "logits", "tolerance": 0.5, "reason": "shifted logits"}])
    budget = {"unmeetable": {"kl_mean": -1.0, "kl_max": -1.0}, "generous": {"kl_mean": 1.0, "kl_max": 1.0}, "none": None}[held]
    real = verify_module.distribution_report
    monkeypatch.setattr(verify_module, "distribution_report", lambda metrics, b: real(metrics, SimpleNamespace(distribution=lambda: budget)))
    run = verify_references(subject, tiny_refs)
    assert [(w["name"], w["case"], w["reason"]) for w in run["waived"]] == [("logits", "hello", "shifted logits")], run["waived"]
    assert run["verdict"] == "PASS", run["reasons"]
    assert parse_deviations(run["deviations"], "the report") == parse_deviations(subject.deviations, "the map")
    assert run["budgets"]["calibrated"] is True and run["budgets"]["factor"] == BUDGET_FACTOR
    d = run["distribution"]
    if held == "unmeetable":
        assert (d["ok"], d["waived"], d["divergence"]) == (True, "shifted logits", None), d
    else:
        assert d["ok"] is {"generous": True, "none": None}[held] and "waived" not in d and d["divergence"] is None, d


def test_deviations_are_checked_and_cover_what_they_say():
    (d,) = parse_deviations([{"checkpoints": ["h*.mlp_act"], "tolerance": 2e-3, "reason": "table", "and_after": True}], "map")
    order = ["embeddings", "h0.ln_1", "h0.mlp_act", "h0.mlp_out", "h1.ln_1", "logits"]
    assert [n for n in order if d.covers(n, order)] == ["h0.mlp_act", "h0.mlp_out", "h1.ln_1", "logits"]
    assert d.covers("h0.mlp_out@t=3,b=0", order)
    assert not Deviation(("h*.mlp_act",), 1e-3, "x").covers("h0.mlp_out", order)
    for bad, message in [({"checkpoints": "x", "tolerance": 2, "reason": "r"}, "between 0 and 1"),
                         ({"checkpoints": "x", "tolerance": 1e-3}, "needs its reason"),
                         ({"checkpoints": [], "tolerance": 1e-3, "reason": "r"}, "checkpoints must be"),
                         ({"checkpoints": "x", "tolerance": 1e-3, "reason": "r", "and_afer": True}, "unknown key 'and_afer'")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_deviations([bad], "map")


GOOD = {"checkpoints": "x", "tolerance": 1e-3, "reason": "r"}


@pytest.mark.parametrize(("data", "message"), [
    ("h0.mlp_act", "map: deviations must be a list of objects, got str"),
    ({"checkpoints": "x"}, "map: deviations must be a list of objects, got dict"),
    ([GOOD, 1], "map: deviations[1] must be an object with checkpoints, tolerance, reason, and_after"),
    ([{**GOOD, "zeta": 1, "and_afer": True}], "map: deviations[0]: unknown key 'and_afer' (known: checkpoints, tolerance, reason, and_after)"),
    ([{"tolerance": 1e-3, "reason": "r"}], "map: deviations[0]: checkpoints must be a pattern or a non-empty list of them, e.g. 'h*.mlp_act'"),
    ([{**GOOD, "checkpoints": ""}], "map: deviations[0]: checkpoints must be"),
    ([{**GOOD, "checkpoints": ["x", ""]}], "map: deviations[0]: checkpoints must be"),
    ([{**GOOD, "checkpoints": ["x", 3]}], "map: deviations[0]: checkpoints must be"),
    ([{**GOOD, "checkpoints": {"x": 1}}], "map: deviations[0]: checkpoints must be"),
    ([{**GOOD, "tolerance": True}], "map: deviations[0]: tolerance must be a number between 0 and 1 (relative to max|ref|), got True"),
    ([{**GOOD, "tolerance": "1e-3"}], "got '1e-3'"),
    ([{**GOOD, "tolerance": 0}], "got 0"),
    ([{**GOOD, "tolerance": 1}], "got 1"),
    ([{**GOOD, "tolerance": None}], "got None"),
    ([{**GOOD, "reason": " \t"}], "map: deviations[0]: a deviation needs its reason (a non-empty string)"),
    ([{**GOOD, "reason": 5}], "needs its reason"),
    ([{**GOOD, "and_after": 1}], "map: deviations[0]: and_after must be true or false"),
    ([{**GOOD, "and_after": None}], "and_after must be true or false"),
])  # fmt: skip
def test_a_malformed_deviation_is_refused_naming_where_which_and_why(data, message):
    with pytest.raises(ValueError) as e:
        parse_deviations(data, "map")
    assert str(e.value).startswith(message) if message.startswith("map") else message in str(e.value), str(e.value)


def test_well_formed_deviations_parse_to_what_they_declare():
    kept = Deviation(("ln_f",), 0.5, "given")
    parsed = parse_deviations([{"checkpoints": "h*.mlp_act", "tolerance": 2e-3, "reason": "  a table  ", "_note": "comment"}, kept,
                               {"checkpoints": ("a", "b"), "tolerance": 0.999, "reason": "r", "and_after": True}], "map")  # fmt: skip
    assert parsed == (Deviation(("h*.mlp_act",), 2e-3, "a table", False), kept, Deviation(("a", "b"), 0.999, "r", True))
    assert parsed[1] is kept and all(type(d.tolerance) is float for d in parsed)  # a Deviation given is kept, and those after it
    assert parse_deviations(None, "map") == () and parse_deviations([], "map") == () and parse_deviations((), "map") == ()


def test_a_deviation_reads_back_from_the_report_and_covers_nothing_its_pattern_does_not_name():
    (d,) = parse_deviations([{"checkpoints": ["h*.mlp_act", "ln_f"], "tolerance": 2e-3, "reason": "table", "and_after": True}], "map")
    assert parse_deviations([d.as_dict()], "the report") == (d,)  # a report's deviations read back as a map's
    order = ["embeddings", "h0.ln_1", "h0.mlp_act", "h0.mlp_out", "h1.ln_1", "logits"]
    assert not Deviation(("h9.*",), 1e-3, "x", and_after=True).covers("h0.mlp_out", order)  # its pattern names none of them


# --- the next-token distribution ----------------------------------------------------------------------------


def test_distribution_metrics_against_torch():
    import torch

    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, 5, 50)) * 3
    got = ref + rng.standard_normal(ref.shape) * 0.1
    tokens = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    ids = rng.integers(0, 50, (2, 5))
    m = distribution.per_position(got, ref, tokens, ids)
    lr, lg = torch.log_softmax(torch.tensor(ref[tokens]), -1), torch.log_softmax(torch.tensor(got[tokens]), -1)
    kl = torch.nn.functional.kl_div(lg, lr, log_target=True, reduction="none").sum(-1).numpy()
    np.testing.assert_allclose(m["kl"], kl, rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(m["top1"], ref[tokens].argmax(-1) == got[tokens].argmax(-1))
    assert len(m["nll"]) == 2 + 4  # positions whose next position holds a token
    same = distribution.summary([distribution.per_position(ref, ref, tokens, ids)])
    assert same["kl_max"] == 0 and same["top1_agreement"] == 1 and same["perplexity_ratio"] == 1


def drawn_logits(dtype, rng):
    """Reference and engine logits [3, 13, 40] in `dtype` (39 positions: more than one CHUNK), batch row 0 a
    thousand above the others (a shift that must stay per position); tokens with row 1 left-padded by 2 and row 2
    right-padded by 3; input ids [3, 13]."""
    ref = rng.standard_normal((3, 13, 40)) * 3
    ref[0] += 1000.0
    got = ref + rng.standard_normal(ref.shape) * 0.1
    tokens = np.ones((3, 13), bool)
    tokens[1, :2] = tokens[2, -3:] = False
    return got.astype(dtype), ref.astype(dtype), tokens, rng.integers(0, 40, (3, 13))


def test_log_softmax_over_the_last_axis_of_any_rank_in_float64():
    import torch

    x = np.random.default_rng(6).standard_normal((2, 3, 7)).astype(np.float32) * 30
    x[1] += 1000.0  # a per-row shift: one taken over the whole array would underflow the other rows
    got = distribution.log_softmax(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    np.testing.assert_allclose(got, torch.log_softmax(torch.tensor(x, dtype=torch.float64), -1).numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_per_position_figure_against_torch_in_float64(dtype):
    import torch

    got, ref, tokens, ids = drawn_logits(dtype, np.random.default_rng(2))
    m = distribution.per_position(got, ref, tokens, ids)
    lg = torch.log_softmax(torch.tensor(got[tokens], dtype=torch.float64), -1)
    lr = torch.log_softmax(torch.tensor(ref[tokens], dtype=torch.float64), -1)
    kl = torch.nn.functional.kl_div(lg, lr, log_target=True, reduction="none").sum(-1)
    top, rows = lr.argmax(-1), torch.arange(len(lr))
    expected = {"kl": kl.clamp(min=0), "top1": lg.argmax(-1) == top, "p_top": lg[rows, top].exp(), "p_top_ref": lr[rows, top].exp()}
    follows = tokens & np.roll(tokens, -1, axis=1)  # a token whose next position holds one
    follows[:, -1] = False
    b, t = np.nonzero(follows)
    scored = torch.tensor(follows[tokens])
    expected["nll"] = -lg[scored][torch.arange(len(b)), torch.tensor(ids[b, t + 1])]
    expected["nll_ref"] = -lr[scored][torch.arange(len(b)), torch.tensor(ids[b, t + 1])]
    assert set(m) == set(expected) and int(tokens.sum()) == 34 and len(b) == 31
    for k, want in expected.items():
        assert m[k].dtype == (bool if k == "top1" else np.float64), (k, m[k].dtype)
        np.testing.assert_allclose(m[k], want.numpy(), rtol=1e-12, atol=1e-13, err_msg=k)


def test_the_summary_over_cases_against_its_definitions():
    rng = np.random.default_rng(3)
    cases = [distribution.per_position(*drawn_logits(np.float64, rng)) for _ in range(2)]
    s = distribution.summary(cases)
    cat = {k: np.concatenate([c[k] for c in cases]) for k in cases[0]}
    assert s == pytest.approx({"positions": 68, "kl_mean": cat["kl"].mean(), "kl_max": cat["kl"].max(),
                               "top1_agreement": cat["top1"].mean(), "p_top_mean": cat["p_top"].mean(),
                               "p_top_ref_mean": cat["p_top_ref"].mean(),
                               "perplexity_ratio": np.exp(cat["nll"].mean() - cat["nll_ref"].mean())}, rel=1e-12)  # fmt: skip
    assert 0 < s["kl_mean"] < s["kl_max"] and 0 < s["top1_agreement"] < 1 and s["perplexity_ratio"] != 1


def test_no_position_or_no_next_token_summarizes_as_nothing_measured():
    """No token at all: every figure NaN, the perplexity ratio 1 (nothing to score), and no warning. One token a row: the
    distribution is measured, no next token is scored."""
    got, ref, _, ids = drawn_logits(np.float64, np.random.default_rng(4))
    nothing = distribution.per_position(got, ref, np.zeros((3, 13), bool), ids)
    assert {k: (v.shape, v.dtype) for k, v in nothing.items()} == {
        k: ((0,), np.dtype(bool) if k == "top1" else np.dtype(np.float64)) for k in ("kl", "top1", "p_top", "p_top_ref", "nll", "nll_ref")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice": nothing measured is said, not computed
        summaries = (distribution.summary([nothing]), distribution.summary([]))
    for s in summaries:
        assert s["positions"] == 0 and s["perplexity_ratio"] == 1.0, s
        assert all(np.isnan(s[k]) for k in ("kl_mean", "kl_max", "top1_agreement", "p_top_mean", "p_top_ref_mean")), s
    alone = np.zeros((3, 13), bool)
    alone[:, 5] = True
    one = distribution.per_position(got, ref, alone, ids)
    s = distribution.summary([one])
    assert (len(one["kl"]), len(one["nll"]), s["positions"], s["perplexity_ratio"]) == (3, 0, 3, 1.0)
    assert s["kl_mean"] > 0 and s["p_top_mean"] > 0


def test_per_position_refuses_logits_and_tokens_that_do_not_fit():
    got, ref, tokens, ids = drawn_logits(np.float64, np.random.default_rng(5))
    for args in ((got, ref[:, :-1], tokens), (got[0], ref[0], tokens[0]), (got, ref, tokens[:, :-1]), (got[..., None], ref[..., None], tokens)):
        with pytest.raises(ValueError, match=r"expected \[B, T, V\] twice and \[B, T\]"):
            distribution.per_position(*args, ids)


def test_saved_arrays_are_read_on_lookup_in_their_given_order(tmp_path):
    from types import SimpleNamespace

    from gpt2core.verification.precision.budgets import SavedArrays

    (tmp_path / "hello").mkdir()
    for i, name in enumerate(["logits", "embeddings"]):
        np.save(tmp_path / "hello" / f"{name}.npy", np.full(2, float(i)))
    saved = SavedArrays(tmp_path, SimpleNamespace(name="hello"), ["logits", "embeddings"])
    assert list(saved) == ["logits", "embeddings"] and len(saved) == 2 and "ln_f" not in saved
    np.testing.assert_array_equal(saved["embeddings"], [1.0, 1.0])
    with pytest.raises(KeyError, match="ln_f"):
        saved["ln_f"]


def test_the_honest_error_is_over_defined_entries_only():
    from gpt2core.verification.errors import ReferencesError
    from gpt2core.verification.precision.budgets import honest_error

    tokens = np.array([[False, True, True]])  # left padding: position 0 is not the model's
    truth = np.array([[[9.0, 1.0], [2.0, -4.0], [0.5, 1.0]]])  # [B, T, C]
    honest = truth + np.array([[[5.0, 5.0], [0.25, 0.0], [0.0, -0.5]]])
    assert honest_error("h0.ln_1", honest.astype(np.float32), truth, tokens) == (0.5, 4.0)  # padding's 5.0 left out
    low = np.finfo(np.float64).min  # masked scores: left out, and a checkpoint with nothing defined gives (0, 0)
    assert honest_error("logits", np.zeros((1, 1, 2)), np.full((1, 1, 2), low), np.array([[True]])) == (0.0, 0.0)
    assert honest_error("logits", np.ones((1, 3, 2)), truth, np.array([[False, False, False]])) == (0.0, 0.0)
    with pytest.raises(ReferencesError, match=r"h0.ln_1: the honest implementation gave \[1, 3, 1\], the float64 pass \[1, 3, 2\]"):
        honest_error("h0.ln_1", honest[..., :1], truth, tokens)


def test_a_float16_kv_class_measures_its_caches_rounding(tiny_dir, tiny_refs):
    """float32 with a float16 KV cache: the honest implementation rounds q, k and v to float16, so its error at
    h0.k is float16's (relative ~1e-4), where plain float32's is float32's (~1e-7)."""
    from gpt2core.verification.model_dir import read_model_dir

    md, (case,) = read_model_dir(tiny_dir), [c for c in tiny_refs.cases if c.name == "hello"]
    rel = {p: (lambda e: e[0] / e[1])(budgets.measure(md, [case], p)["hello"]["checkpoints"]["h0.k"]) for p in ("float32", "float32-f16kv")}
    assert rel["float32"] < 1e-6 < 1e-5 < rel["float32-f16kv"] < 1e-3, rel


def test_per_case_distribution_summaries_combine_weighted_by_positions():
    from gpt2core.verification.precision.distribution import summary_of_summaries

    nan = float("nan")
    cases = [{"positions": 2, "kl_mean": 1.0, "kl_max": 3.0, "top1_agreement": 0.5},
             {"positions": 0, "kl_mean": nan, "kl_max": nan, "top1_agreement": nan},
             {"positions": 6, "kl_mean": 2.0, "kl_max": 2.5, "top1_agreement": 1.0}]  # fmt: skip
    assert summary_of_summaries(cases) == {"positions": 8, "kl_mean": 1.75, "kl_max": 3.0, "top1_agreement": 0.875}
    assert summary_of_summaries(cases[1:]) == {"positions": 6, "kl_mean": 2.0, "kl_max": 2.5, "top1_agreement": 1.0}
    empty = summary_of_summaries(cases[1:2])
    assert empty["positions"] == 0 and all(np.isnan(empty[k]) for k in ("kl_mean", "kl_max", "top1_agreement")) and len(empty) == 4


@pytest.mark.parametrize(("kl_mean", "kl_max", "held_mean", "held_max"), [
    (1e-3, 4e-3, KL_FACTOR * 1e-3, KL_FACTOR * 4e-3),  # KL_FACTOR times the honest figures
    (0.0, 1e-14, KL_FLOOR, KL_FLOOR),  # never below the floor
])  # fmt: skip
def test_the_distribution_budgets_are_kl_factor_times_the_honest_kl_and_at_least_the_floor(kl_mean, kl_max, held_mean, held_max):
    """Budgets.distribution over the stored per-case figures: max(KL_FLOOR, KL_FACTOR * the honest KL mean), and the
    same of the KL max, with the honest figures beside them; none uncalibrated."""
    from gpt2core.verification.precision.classes import precision_class

    honest = {"positions": 4, "kl_mean": kl_mean, "kl_max": kl_max, "top1_agreement": 1.0}
    doc = {"cases": {"hello": {"checkpoints": {}, "distribution": honest}}}
    held = budgets.Budgets(precision_class("float16"), np.float32, doc).distribution()
    assert held == {"kl_mean": held_mean, "kl_max": held_max, "honest": honest}, held
    assert budgets.Budgets(precision_class("float16"), np.float32, None).distribution() is None


def test_a_checkpoints_budget_is_budget_factor_times_its_honest_error_and_a_missing_one_is_named():
    """Budgets.atol(case, name): BUDGET_FACTOR times the stored honest error (a step suffix ignored); a case or
    checkpoint the budgets do not hold is a ReferencesError naming both and how to remake them; uncalibrated 0."""
    from gpt2core.verification.errors import ReferencesError
    from gpt2core.verification.precision.classes import precision_class

    doc = {"cases": {"hello": {"checkpoints": {"logits": [2e-6, 5.0], "ln_f": [3e-7, 1.0]}}, "bare": {}}}
    held = budgets.Budgets(precision_class("float16"), np.float32, doc)
    assert held.tol == {np.dtype(np.float32): precision_class("float16").floor} and held.calibrated
    assert held.atol("hello", "logits") == BUDGET_FACTOR * 2e-6 and held.atol("hello", "ln_f@t=3,b=1") == BUDGET_FACTOR * 3e-7
    for case, name in (("hello", "h0.mlp_out"), ("bare", "logits"), ("other", "logits@t=2,b=0")):
        with pytest.raises(ReferencesError) as e:
            held.atol(case, name)
        assert str(e.value) == f"the float16 budgets have no {name} on case {case}: recompute them with gpt2core budgets --force"
    assert budgets.Budgets(precision_class("float16"), np.float32, None).atol("other", "anything") == 0.0


def test_budgets_are_measured_once_per_set_and_class_unless_forced(tiny_dir, set_copy):
    """ensure_budgets keeps what is stored (the first command's document) until asked to measure again (--force)."""
    from gpt2core.verification.reference_set import load_references

    refs = load_references(set_copy, tiny_dir)
    budgets.path_of(refs.root, "bfloat16").unlink(missing_ok=True)  # the shared set may hold them from another test
    assert ensure_budgets(refs, tiny_dir, "bfloat16", command="first")["command"] == "first"
    assert ensure_budgets(refs, tiny_dir, "bfloat16", command="second")["command"] == "first"  # stored: not measured again
    assert ensure_budgets(refs, tiny_dir, "bfloat16", command="third", force=True)["command"] == "third"
    assert budgets.read(refs.root, "bfloat16", budgets.file_sha256(refs.root / "manifest.json"))["command"] == "third"
