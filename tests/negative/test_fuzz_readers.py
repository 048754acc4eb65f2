"""Fuzzing the readers of untrusted input with hypothesis: config.json, safetensors files, reference
manifests. Each either loads or raises the project's own error naming the file; nothing else escapes,
nothing hangs, and no header length is trusted before it is checked against the file."""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gpt2core.engine.weights import params_from_tensors, read_tensors
from gpt2core.engine.config import GPT2Config
from gpt2core.errors import CheckpointError, ConfigError, ReferencesError
from gpt2core.verification.reference_set import load_references

FIELDS = ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "layer_norm_epsilon",
          "activation_function", "bos_token_id", "eos_token_id", "tie_word_embeddings", "model_type", "n_ctx",
          "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "add_cross_attention"]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
plausible = st.one_of(st.integers(-3, 100), json_values)


@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), plausible, max_size=12))
def test_config_from_any_dict_loads_or_raises_config_error(d):
    try:
        cfg = GPT2Config.from_dict(d, source="fuzz.json")
    except ConfigError as e:
        assert str(e).startswith("fuzz.json: "), str(e)
        return
    assert cfg.n_embd % cfg.n_head == 0 and min(cfg.vocab_size, cfg.n_positions, cfg.n_layer) > 0
    assert GPT2Config.from_dict(cfg.to_dict()) == cfg


@given(st.binary(max_size=300))
def test_config_file_of_random_bytes_raises_config_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_bytes(data)
        try:
            GPT2Config.from_json_file(path)
        except ConfigError as e:
            assert str(path) in str(e)


def read(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        path.write_bytes(data)
        try:
            return read_tensors(path)
        except CheckpointError as e:
            assert str(path) in str(e)
            return None


@given(st.binary(max_size=400))
def test_safetensors_of_random_bytes_raises_checkpoint_error(data):
    read(data)


@given(st.integers(0, 2**64 - 1), st.binary(max_size=64))
def test_any_header_length_is_checked_before_use(n, rest):
    read(struct.pack("<Q", n) + rest)  # lengths up to 2**64 - 1: an error, never an allocation of n bytes


DTYPES = st.sampled_from(["F32", "F64", "F16", "I64", "I8", "BOOL", "U8", "BF16", "XX", ""])
entries = st.fixed_dictionaries({
    "dtype": DTYPES,
    "shape": st.lists(st.integers(-2, 6), max_size=3) | json_values,
    "data_offsets": st.lists(st.integers(-5, 200), min_size=0, max_size=3) | json_values,
})  # fmt: skip


@given(st.dictionaries(st.sampled_from(["wte.weight", "h.0.ln_1.weight", "__metadata__", "x"]), entries | json_values, max_size=4),
       st.binary(max_size=200), st.integers(0, 8))  # fmt: skip
def test_safetensors_with_random_header_raises_checkpoint_error_or_loads(header, payload, pad):
    blob = json.dumps(header).encode() + b" " * pad
    tensors = read(struct.pack("<Q", len(blob)) + blob + payload)
    if tensors is None:
        return
    cfg = GPT2Config(vocab_size=4, n_positions=2, n_embd=2, n_layer=1, n_head=1, bos_token_id=0, eos_token_id=0)
    try:
        params_from_tensors(tensors, cfg, np.dtype(np.float64), "fuzz")
    except CheckpointError as e:
        assert str(e).startswith("fuzz"), str(e)


@given(json_values | st.dictionaries(st.sampled_from(["format", "dtype", "cases", "model", "x"]), json_values))
def test_reference_manifest_of_any_json_raises_references_error(manifest):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest))
        try:
            load_references(tmp)
        except ReferencesError as e:
            assert "manifest.json" in str(e)
