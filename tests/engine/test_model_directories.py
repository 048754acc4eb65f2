"""Model directories gpt2core writes are the ones the ecosystem expects: config.json carries GPT-2's published
fields (n_ctx among them, which transformers 5 no longer writes and llama.cpp's converter reads), and llama.cpp's
convert_hf_to_gguf.py converts a directory of `gpt2core init-model` unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from gpt2core.cli import main

# openai-community/gpt2's config.json, as published on the Hugging Face hub (the 124M model)
PUBLISHED_GPT2_CONFIG = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1, "bos_token_id": 50256,
    "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
    "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1,
    "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
    "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}  # fmt: skip


def test_init_model_writes_gpt2s_published_configuration(tmp_path):
    assert main(["init-model", str(tmp_path / "m"), "--shape", "124M"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    differ = {k: (config.get(k, "<missing>"), v) for k, v in PUBLISHED_GPT2_CONFIG.items() if config.get(k, "<missing>") != v}
    assert not differ, differ


@pytest.mark.parametrize("stress", [False, True])
def test_every_directory_carries_n_ctx(tmp_path, stress):
    """The stress model is written by transformers' save_pretrained (which drops n_ctx): completed the same way."""
    assert main(["init-model", str(tmp_path / "m"), "--shape", "tiny", *(["--stress"] if stress else [])]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["n_ctx"] == config["n_positions"] == 128
    assert {k: config[k] for k in ("bos_token_id", "eos_token_id", "summary_type")} == {
        k: PUBLISHED_GPT2_CONFIG[k] for k in ("bos_token_id", "eos_token_id", "summary_type")}


def test_llama_cpps_converter_takes_an_init_model_directory_unchanged(tmp_path):
    from support.llama_cpp import gguf_reader, llama_cpp_dir

    model = tmp_path / "m"
    assert main(["init-model", str(model), "--shape", "tiny"]) == 0
    out = tmp_path / "m-f32.gguf"
    done = subprocess.run([sys.executable, str(llama_cpp_dir() / "convert_hf_to_gguf.py"), str(model), "--outfile", str(out),
                           "--outtype", "f32"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    reader = gguf_reader(out)
    fields = {name: reader.fields[name].contents() for name in ("general.architecture", "gpt2.block_count", "gpt2.context_length")}
    assert fields == {"general.architecture": "gpt2", "gpt2.block_count": 2, "gpt2.context_length": 128}
    tensors = {t.name: np.asarray(t.data) for t in reader.tensors}
    weights = load_file(model / "model.safetensors")
    assert np.array_equal(tensors["token_embd.weight"], weights["transformer.wte.weight"])
    assert np.array_equal(tensors["blk.1.ffn_up.bias"], weights["transformer.h.1.mlp.c_fc.bias"])
