"""The reference sets themselves: captured from transformers' real forward pass, self-consistent bit for
bit, tied to the weights they were made for, and impossible to pass when missing or altered."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from support.models import engine_subject, hf_model, hf_model_dir

from gpt2core.errors import ReferencesError
from gpt2core.verification.capture import capture
from gpt2core.verification.cases import text_case
from gpt2core.verification.model_dir import read_model_dir
from gpt2core.verification.reference_set import FORMAT, MANIFEST, load_references
from gpt2core.verification.verify import compare_case


def torch_of(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def test_captured_chain_is_the_models_own_forward_pass(model_dir, dtype, reference_set):
    """Bit for bit: the captured logits are what an un-instrumented call returns, and each captured stage
    follows from the captured stage before it through transformers' own modules."""
    model = hf_model(model_dir, dtype)
    for case in reference_set.cases:
        kwargs = {"position_ids": torch_of(case.position_ids)}
        if case.attention_mask is not None:
            kwargs["attention_mask"] = torch_of(case.attention_mask)
        with torch.no_grad():
            plain = model(torch_of(case.input_ids), **kwargs).logits.numpy()
            ln_f = case.array("ln_f")
            assert np.array_equal(case.array("logits"), plain), f"case {case.name}: captured logits != model output"
            assert np.array_equal(model.lm_head(torch_of(ln_f)).numpy(), case.array("logits"))
            last = case.array(f"h{model.config.n_layer - 1}.out")
            assert np.array_equal(model.transformer.ln_f(torch_of(last)).numpy(), ln_f)
            for i, block in enumerate(model.transformer.h):
                x = case.array("embeddings") if i == 0 else case.array(f"h{i - 1}.out")
                h = f"h{i}"
                assert np.array_equal(block.ln_1(torch_of(x)).numpy(), case.array(h + ".ln_1"))
                probs = torch.nn.functional.softmax(torch_of(case.array(h + ".attn_scores")), dim=-1).numpy()
                assert np.array_equal(probs, case.array(h + ".attn_probs")), f"case {case.name}: {h} probs"
                heads = torch.matmul(torch_of(probs), torch_of(case.array(h + ".v"))).transpose(1, 2)
                heads = heads.reshape(*heads.shape[:2], -1).numpy()
                assert np.array_equal(heads, case.array(h + ".attn_heads")), f"case {case.name}: {h}.attn_heads"
                attn_out = block.attn.c_proj(torch_of(heads)).numpy()
                assert np.array_equal(attn_out, case.array(h + ".attn_out")), f"case {case.name}: {h}.attn_out"
                resid = torch_of(x) + torch_of(attn_out)
                assert np.array_equal(resid.numpy(), case.array(h + ".resid_mid")), f"case {case.name}: {h}.resid_mid"
                assert np.array_equal(block.ln_2(resid).numpy(), case.array(h + ".ln_2"))
                fc = block.mlp.c_fc(torch_of(case.array(h + ".ln_2"))).numpy()
                assert np.array_equal(fc, case.array(h + ".mlp_fc")), f"case {case.name}: {h}.mlp_fc"
                act = block.mlp.act(torch_of(fc)).numpy()
                assert np.array_equal(act, case.array(h + ".mlp_act")), f"case {case.name}: {h}.mlp_act"
                mlp_out = block.mlp.c_proj(torch_of(act)).numpy()
                assert np.array_equal(mlp_out, case.array(h + ".mlp_out")), f"case {case.name}: {h}.mlp_out"
                out = resid + torch_of(mlp_out)
                assert np.array_equal(out.numpy(), case.array(h + ".out")), f"case {case.name}: {h}.out"


def test_captured_scores_carry_transformers_causal_mask(tiny_dir):
    """The scores are taken after transformers applied its mask: future keys hold the dtype's minimum."""
    case = text_case("s", read_model_dir(tiny_dir).tokenizer, ["one two three four"])
    scores = capture(tiny_dir, case, np.float32)["h0.attn_scores"]
    T = case.input_ids.shape[1]
    future = ~np.tri(T, T, dtype=bool)
    assert (scores[0, :, future] == np.finfo(np.float32).min).all()
    assert (scores[0, :, ~future] > np.finfo(np.float32).min).all()


def test_manifest_describes_the_set(model_dir, dtype, reference_set):
    manifest = json.loads((reference_set.root / MANIFEST).read_text())
    weights = model_dir / "model.safetensors"
    assert manifest["model"]["weights_sha256"] == {"model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert manifest["dtype"] == np.dtype(dtype).name
    assert {"transformers", "torch", "numpy", "gpt2core"} <= set(manifest["versions"])
    assert manifest["versions"]["transformers"] == __import__("transformers").__version__
    assert manifest["command"]
    for case in manifest["cases"]:
        for c in case["checkpoints"]:
            array = np.load(reference_set.root / c["file"], allow_pickle=False)
            assert [list(array.shape), array.dtype.name] == [c["shape"], c["dtype"]], c["file"]


@pytest.fixture
def tiny_refs(tmp_path, tiny_dir, tmp_path_factory):
    """A private copy of the tiny float64 reference set, free to damage."""
    from support.references import reference_set

    refs = reference_set(tiny_dir, np.float64, tmp_path_factory)
    copy = tmp_path / "refs"
    shutil.copytree(refs.root, copy)
    return copy


def run_chain(tiny_dir, ref_dir):
    refs = load_references(ref_dir, tiny_dir)
    subject = engine_subject(tiny_dir, np.float64)
    return [compare_case(subject, case, "chained", refs.checkpoint_names) for case in refs.cases]


def test_intact_copy_passes(tiny_dir, tiny_refs):
    assert all(c.ok for comps in run_chain(tiny_dir, tiny_refs) for c in comps)


def test_deleted_reference_file_fails_with_how_to_create_it(tiny_dir, tiny_refs):
    (tiny_refs / "sentence" / "h1.attn_probs.npy").unlink()
    with pytest.raises(ReferencesError, match=r"h1\.attn_probs\.npy is missing; create them with: gpt2core references"):
        run_chain(tiny_dir, tiny_refs)


def test_missing_manifest_fails(tiny_dir, tiny_refs):
    (tiny_refs / MANIFEST).unlink()
    with pytest.raises(ReferencesError, match=r"manifest\.json not found.*gpt2core references --model"):
        run_chain(tiny_dir, tiny_refs)


def test_references_for_other_weights_are_refused(tiny_refs):
    other = hf_model_dir("tiny", seed=1)
    with pytest.raises(ReferencesError, match="made for other weights"):
        run_chain(other, tiny_refs)


def test_truncated_reference_file_fails(tiny_dir, tiny_refs):
    f = tiny_refs / "hello" / "logits.npy"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(ReferencesError, match=r"logits\.npy was altered or truncated"):
        run_chain(tiny_dir, tiny_refs)


def rewrite(tiny_refs, file, array, **manifest_changes):
    """Replace one reference file and make the manifest agree with its hash (a consistent but wrong set)."""
    path = tiny_refs / file
    np.save(path, array, allow_pickle=True)
    manifest = json.loads((tiny_refs / MANIFEST).read_text())
    for case in manifest["cases"]:
        for c in case["checkpoints"]:
            if c["file"] == file:
                c["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
                c.update(manifest_changes)
    (tiny_refs / MANIFEST).write_text(json.dumps(manifest))


def test_wrong_shape_in_file_fails(tiny_dir, tiny_refs):
    rewrite(tiny_refs, "hello/ln_f.npy", np.zeros((1, 2, 3)))
    with pytest.raises(ReferencesError, match=r"ln_f\.npy: float64 \[1, 2, 3\], manifest says float64 \[1, 2, 64\]"):
        run_chain(tiny_dir, tiny_refs)


def test_consistent_but_wrong_shape_fails_the_comparison(tiny_dir, tiny_refs):
    """File and manifest agree on a wrong shape: the comparison fails on the shape, never broadcasts."""
    rewrite(tiny_refs, "hello/ln_f.npy", np.zeros((1, 1, 64)), shape=[1, 1, 64])
    comps = {c.name: c for c in run_chain(tiny_dir, tiny_refs)[1]}
    assert not comps["ln_f"].ok and "shape [1, 2, 64] != reference shape [1, 1, 64]" in comps["ln_f"].problem


def test_pickled_reference_file_is_never_unpickled(tiny_dir, tiny_refs):
    rewrite(tiny_refs, "hello/ln_f.npy", np.array([{"x": 1}], dtype=object), dtype="object", shape=[1])
    with pytest.raises(ReferencesError, match="not a readable .npy file"):
        run_chain(tiny_dir, tiny_refs)


def test_malformed_manifest_fails(tiny_dir, tiny_refs):
    (tiny_refs / MANIFEST).write_text(json.dumps({"format": FORMAT, "dtype": "float64"}))
    with pytest.raises(ReferencesError, match=r"malformed manifest \(KeyError: 'model'\)"):
        run_chain(tiny_dir, tiny_refs)


def test_manifest_path_outside_the_set_is_refused(tiny_dir, tiny_refs):
    manifest = json.loads((tiny_refs / MANIFEST).read_text())
    manifest["cases"][0]["checkpoints"][0]["file"] = "../../etc/passwd"
    (tiny_refs / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ReferencesError, match="lies outside"):
        run_chain(tiny_dir, tiny_refs)


def sampled_case_entry(manifest: dict) -> dict:
    return next(c for c in manifest["cases"] if c.get("sampling"))


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["settings"].update(top_p=1.5), "sampling settings out of range"),
    (lambda s: s["settings"].pop("seed"), "KeyError: 'seed'"),
    (lambda s: s.update(ids=[row[:-1] for row in s["ids"]]), "sampled ids of shape"),
    (lambda s: s.update(ids=[[row[0] + 1, *row[1:]] for row in s["ids"]]), "do not continue its input ids"),
    (lambda s: s["checkpoints"][0].update(file="../outside.npy"), "lies outside"),
])  # fmt: skip
def test_malformed_sampling_record_is_refused(tiny_dir, tiny_refs, change, message):
    manifest = json.loads((tiny_refs / MANIFEST).read_text())
    change(sampled_case_entry(manifest)["sampling"])
    (tiny_refs / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ReferencesError, match=message):
        load_references(tiny_refs, tiny_dir)


def test_altered_sampled_scores_file_is_refused(tiny_dir, tiny_refs):
    entry = sampled_case_entry(json.loads((tiny_refs / MANIFEST).read_text()))["sampling"]["checkpoints"][0]
    path = tiny_refs / entry["file"]
    array = np.load(path)
    array[np.unravel_index(np.argmax(array), array.shape)] += 1  # a kept token's score (filtered ones are -inf)
    np.save(path, array)
    case = next(c for c in load_references(tiny_refs, tiny_dir).cases if c.sampling is not None)
    with pytest.raises(ReferencesError, match="was altered or truncated"):
        case.array(entry["name"])
