"""Loading Hugging Face GPT-2 directories: key layouts, tied head, the hub cache layout, init-model output."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import gpt2core
from gpt2core.init_model import init_model


def copy_dir(src, dst):
    shutil.copytree(src, dst)
    return dst


def rewrite_weights(model_dir, change):
    path = model_dir / "model.safetensors"
    tensors = load_file(str(path))
    save_file(change(tensors), str(path), metadata={"format": "pt"})


def test_keys_without_transformer_prefix_and_with_explicit_head(tiny_dir, tmp_path):
    """The trained `gpt2` checkpoint stores keys without the prefix and mask buffers `h.N.attn.bias`."""
    d = copy_dir(tiny_dir, tmp_path / "m")

    def strip(t):
        out = {k.removeprefix("transformer."): v for k, v in t.items()}
        out["h.0.attn.bias"] = np.tril(np.ones((1, 1, 128, 128), np.float32))
        out["lm_head.weight"] = out["wte.weight"].copy()
        return out

    rewrite_weights(d, strip)
    ids = np.array([[15496, 13, 8]])
    np.testing.assert_array_equal(gpt2core.load(d)(ids), gpt2core.load(tiny_dir)(ids))


def test_tied_head_is_the_embedding_array(tiny_dir):
    model = gpt2core.load(tiny_dir)
    assert model.params.lm_head is model.params.wte


def test_untied_head_when_config_unties(tiny_dir, tmp_path):
    d = copy_dir(tiny_dir, tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (d / "config.json").write_text(json.dumps(cfg))
    head = np.random.default_rng(0).standard_normal((50257, 64)).astype(np.float32)
    rewrite_weights(d, lambda t: {**t, "lm_head.weight": head})
    model = gpt2core.load(d)
    np.testing.assert_array_equal(model.params.lm_head, head)
    assert model.params.lm_head is not model.params.wte
    assert_packed_in_one_aligned_buffer(model.params)


def test_tied_head_stored_in_float64_is_compared_in_the_engines_dtype(tiny_dir, tmp_path):
    """A float64 checkpoint that also stores the tied head, loaded in float32: its lm_head.weight equals wte
    after both are rounded to float32, not the float64 values of the file."""
    d = copy_dir(tiny_dir, tmp_path / "m")
    rng = np.random.default_rng(0)

    def to_float64(t):
        out = {k: v.astype(np.float64) for k, v in t.items()}
        out["transformer.wte.weight"] += rng.uniform(0, 1e-12, out["transformer.wte.weight"].shape)  # not float32 values
        out["lm_head.weight"] = out["transformer.wte.weight"].copy()
        return out

    rewrite_weights(d, to_float64)
    model = gpt2core.load(d, dtype=np.float32)
    assert model.params.lm_head is model.params.wte and model.params.wte.dtype == np.float32
    assert_packed_in_one_aligned_buffer(model.params)


def test_float64_weights_are_float64_copies(tiny_dir):
    model = gpt2core.load(tiny_dir, dtype=np.float64)
    assert all(a.dtype == np.float64 for a in model.params.arrays())
    assert model(np.array([1, 2, 3])).dtype == np.float64


def test_hub_cache_layout_by_model_name(tiny_dir, tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--openai-community--gpt2"
    snap = repo / "snapshots" / "abc123"
    shutil.copytree(tiny_dir, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)  # "gpt2" must not resolve as a relative directory
    for name in ("gpt2", "openai-community/gpt2"):
        assert gpt2core.load(name).path == snap


def test_unknown_model_name_is_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(gpt2core.CheckpointError, match="never downloads"):
        gpt2core.load("some-org/some-model")


def test_init_model_directory_loads_in_transformers_unchanged(tmp_path):
    """`gpt2core init-model` writes what transformers reads: same logits, same tokenizer ids."""
    import torch
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    d = init_model(tmp_path / "tiny", shape="tiny", seed=3)
    hf = GPT2LMHeadModel.from_pretrained(d).eval()
    tok = GPT2TokenizerFast.from_pretrained(d)
    model = gpt2core.load(d)
    text = "Hello world! Numbers 12345, émojis 🙂 and  double  spaces.<|endoftext|>"
    assert model.tokenizer.encode(text) == tok.encode(text)
    assert model.tokenizer.decode(tok.encode(text)) == text
    ids = np.array([tok.encode("Hello.")])
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(model(ids), ref, rtol=0, atol=2e-5)  # float32, see support/tolerances.py
    # GPT-2's initialisation: the residual projections are scaled by 1/sqrt(2 n_layer)
    w = load_file(str(d / "model.safetensors"))
    assert abs(w["transformer.h.0.attn.c_attn.weight"].std() - 0.02) < 1e-3
    assert abs(w["transformer.h.0.mlp.c_proj.weight"].std() - 0.02 / 2) < 1e-3


def test_init_model_is_deterministic_per_seed(tmp_path):
    a = load_file(str(init_model(tmp_path / "a", "tiny", seed=1) / "model.safetensors"))
    b = load_file(str(init_model(tmp_path / "b", "tiny", seed=1) / "model.safetensors"))
    c = load_file(str(init_model(tmp_path / "c", "tiny", seed=2) / "model.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["transformer.wte.weight"], c["transformer.wte.weight"])


def test_tokenizer_matches_transformers_on_varied_text(tiny_dir, fresh_vocabularies):
    from transformers import GPT2TokenizerFast

    tok = GPT2TokenizerFast.from_pretrained(tiny_dir)
    ours = gpt2core.load(tiny_dir).tokenizer
    for text in ["", " ", "Hello.", "  leading spaces", "tabs\tand\nnewlines\n\n", "Ünïcödé 日本語", "'s 're 've 'll",
                 "<|endoftext|>a<|endoftext|>", "x" * 300]:  # fmt: skip
        assert ours.encode(text) == tok.encode(text), text
        assert ours.decode(ours.encode(text)) == text


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_bytes_count_every_array_once(tiny_dir, dtype):
    model = gpt2core.load(tiny_dir, dtype=dtype)
    c = model.config
    C, F = c.n_embd, c.mlp_width
    per_layer = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * F + F) + (F * C + C)
    n_params = c.vocab_size * C + c.n_positions * C + c.n_layer * per_layer + 2 * C  # the tied head counted once
    assert model.params.nbytes() == n_params * np.dtype(dtype).itemsize
    arrays = list(model.params.arrays())
    assert arrays[0] is model.params.wte and arrays[-1] is model.params.lm_head  # the arrays, not copies
    assert any(a is model.params.blocks[-1].mlp_proj.w for a in arrays)


def test_cache_capacity_bounds(tiny_dir):
    model = gpt2core.load(tiny_dir)
    assert model.new_cache(1, capacity=1).capacity == 1 and model.new_cache(2, 5).capacity == 5
    assert model.new_cache(1).capacity == model.config.n_positions
    with pytest.raises(gpt2core.InputError, match=r"^cache capacity must be in \[1, n_positions=128\], got 0$"):
        model.new_cache(1, capacity=0)


def test_cached_padding_is_remembered_without_a_new_mask(tiny_dir):
    model = gpt2core.load(tiny_dir)
    ids, mask = np.array([[0, 15496, 13], [464, 2068, 318]]), np.array([[0, 1, 1], [1, 1, 1]])
    cache = model.new_cache(2)
    model(ids, mask, cache=cache)
    assert cache.mask.dtype == np.int64 and cache.mask[:, :3].tolist() == mask.tolist()
    step = np.array([[11], [11]])
    with_mask = model.new_cache(2)
    model(ids, mask, cache=with_mask)
    a = model(step, np.concatenate([mask, np.ones((2, 1), int)], 1), cache=with_mask)
    b = model(step, cache=cache)  # the cache's own mask stands in for the omitted one
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 1, model.config.vocab_size)


def write_vocabulary(directory, tokens, merges):
    """A byte-level BPE vocabulary of `tokens` (ids in order) and `merges` ("a b" lines) in directory/."""
    directory.mkdir(exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{m}\n" for m in merges))
    return directory


def test_a_vocabulary_is_read_once_per_content_and_again_when_either_file_changes(tmp_path, fresh_vocabularies):
    """Two directories with the same files share one parsed BPE; changing vocab.json or merges.txt in place (same
    path) gives the new vocabulary, not the one read before."""
    from gpt2core.engine.tokenizer import GPT2Tokenizer, read_vocabulary

    a = write_vocabulary(tmp_path / "a", ["a", "b", "ab"], ["a b"])
    b = write_vocabulary(tmp_path / "b", ["a", "b", "ab"], ["a b"])
    first = read_vocabulary(a / "vocab.json", a / "merges.txt")
    assert first == ({"a": 0, "b": 1, "ab": 2}, first[1])
    assert read_vocabulary(b / "vocab.json", b / "merges.txt")[1] is first[1]
    assert GPT2Tokenizer.from_dir(a).encode("abab") == [2, 2]

    write_vocabulary(a, ["a", "b", "ab", "<|endoftext|>"], ["a b"])  # vocab.json changed, merges.txt not
    changed = GPT2Tokenizer.from_dir(a)
    assert (changed.vocab_size, changed.eos_token_id) == (4, 3)
    write_vocabulary(b, ["a", "b", "ab"], [])  # merges.txt changed, vocab.json not: nothing merges
    assert GPT2Tokenizer.from_dir(b).encode("abab") == [0, 1, 0, 1]


def test_a_vocabulary_that_fails_its_checks_is_read_again_once_fixed_and_few_are_kept(tmp_path, fresh_vocabularies):
    from gpt2core.engine import tokenizer

    d = write_vocabulary(tmp_path / "d", ["a", "b"], [])
    (d / "vocab.json").write_text('{"a": -1}')
    with pytest.raises(gpt2core.TokenizerError, match="non-negative id"):
        tokenizer.GPT2Tokenizer.from_dir(d)
    write_vocabulary(d, ["a", "b"], [])
    assert tokenizer.GPT2Tokenizer.from_dir(d).encode("ba") == [1, 0]
    for n in range(2 * tokenizer.VOCABULARIES_KEPT):
        write_vocabulary(tmp_path / f"v{n}", ["a", "b", *[f"t{i}" for i in range(n)]], [])
        tokenizer.GPT2Tokenizer.from_dir(tmp_path / f"v{n}")
        assert 1 <= len(tokenizer._vocabularies) <= tokenizer.VOCABULARIES_KEPT


def test_tokenizer_refuses_ids_outside_the_vocabulary(tiny_dir, fresh_vocabularies):
    tok = gpt2core.load(tiny_dir).tokenizer
    assert tok.decode([15496, 13]) == "Hello."
    with pytest.raises(gpt2core.TokenizerError, match=r"^decode: token id\(s\) \[50257\] outside the vocabulary \[0, 50257\)$"):
        tok.decode([50257])
    with pytest.raises(gpt2core.TokenizerError, match=r"token id\(s\) \[-1, 50257, 50258, 50259, 50260\] outside"):
        tok.decode([-1, 50257, 50258, 50259, 50260, 50261])


def test_scaled_atol_scales_by_max_abs_with_a_floor_of_one():
    from gpt2core.verification.tolerances import OP_TOL, scaled_atol

    base = OP_TOL[np.dtype(np.float64)]
    assert scaled_atol(OP_TOL, np.array([0.5, -0.25])) == base
    assert scaled_atol(OP_TOL, np.array([1.0, -3.0])) == 3 * base
    assert scaled_atol(OP_TOL, np.zeros((0, 3))) == base


@pytest.fixture(scope="module")
def sharded_dir(tiny_dir, tmp_path_factory):
    """The tiny model saved by transformers in several shards with a model.safetensors.index.json."""
    from support.models import hf_model

    d = tmp_path_factory.mktemp("sharded") / "m"
    hf_model(tiny_dir, np.float32).save_pretrained(d, max_shard_size="4MB")
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(tiny_dir / name, d / name)
    return d


def test_sharded_checkpoint_loads_the_same_arrays(tiny_dir, sharded_dir):
    index = json.loads((sharded_dir / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1, "transformers wrote one shard; the test needs several"
    assert not (sharded_dir / "model.safetensors").exists()
    sharded, single = gpt2core.load(sharded_dir), gpt2core.load(tiny_dir)
    for a, b in zip(sharded.params.arrays(), single.params.arrays(), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_config_json_written_by_gpt2core_agrees_with_transformers(tiny_dir):
    """to_dict() states every value transformers wrote for the keys gpt2core reads or checks, the same way."""
    import transformers

    from gpt2core.engine.config import GPT2_SETTINGS, GPT2Config

    theirs = json.loads((tiny_dir / "config.json").read_text())  # written by save_pretrained
    ours = GPT2Config.from_dict(theirs).to_dict()
    checked = {*GPT2Config.__dataclass_fields__, "model_type", "architectures", *GPT2_SETTINGS}
    assert set(ours) == checked, sorted(set(ours) ^ checked)
    assert {k: theirs[k] for k in checked} == ours
    assert isinstance(transformers.GPT2Config.from_dict(ours), transformers.GPT2Config)


def test_tokenizer_end_of_text_is_one_special_token(tiny_dir, fresh_vocabularies):
    tok = gpt2core.load(tiny_dir).tokenizer
    assert (tok.vocab_size, tok.eos_token_id) == (50257, 50256)
    assert tok.encode("a<|endoftext|>b") == [tok.encode("a")[0], 50256, tok.encode("b")[0]]
    assert tok.decode([50256]) == "<|endoftext|>"


def assert_packed_in_one_aligned_buffer(params):
    """Every weight a view of one plain in-memory buffer (not the file's mapping, which closes once loading is
    done), the first starting on a huge page, each on a cache line, no two overlapping."""
    from gpt2core.engine.weights import HUGE_PAGE, SLOT_ALIGNMENT

    arrays = {id(a): a for a in params.arrays()}.values()  # a tied head once
    buffer = params.wte.base
    assert type(buffer) is np.ndarray and buffer.flags.owndata and buffer.dtype == np.uint8
    spans = sorted((a.ctypes.data, a.ctypes.data + a.nbytes, a.shape) for a in arrays)
    for a in arrays:
        assert a.base is buffer and type(a) is np.ndarray, a.shape
    assert spans[0][0] % HUGE_PAGE == 0
    for (start, end, shape), (next_start, _, next_shape) in zip(spans, spans[1:]):
        assert start % SLOT_ALIGNMENT == 0 and end <= next_start, (shape, next_shape)
    assert buffer.ctypes.data <= spans[0][0] and spans[-1][1] <= buffer.ctypes.data + buffer.nbytes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_are_loaded_in_the_engines_layout_in_one_aligned_buffer(tiny_dir, dtype):
    """Conv1D matrices column-major (what bench.prefill_matmuls times), everything else row-major."""
    from gpt2core.engine.weights import read_tensors

    params = gpt2core.load(tiny_dir, dtype=dtype).params
    for blk in params.blocks:
        for lin in (blk.c_attn, blk.attn_proj, blk.c_fc, blk.mlp_proj):
            assert lin.w.flags.f_contiguous and not lin.w.flags.c_contiguous, lin.w.shape
            assert lin.b.flags.c_contiguous
    for a in (params.wte, params.wpe, params.ln_f.g, params.blocks[0].ln_1.g):
        assert a.flags.c_contiguous, a.shape
    assert_packed_in_one_aligned_buffer(params)
    raw = load_file(str(tiny_dir / "model.safetensors"))
    for name, a in read_tensors(tiny_dir / "model.safetensors").items():
        assert a.flags.owndata and type(a) is np.ndarray, name
        assert a.dtype == raw[name].dtype and a.shape == raw[name].shape, name
        np.testing.assert_array_equal(a, raw[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loaded_weights_are_the_loaders_single_copies(tiny_dir, dtype, monkeypatch):
    """Each weight is copied once, from the file's mapping straight into the engine's dtype and layout:
    no array of the model is a second conversion made afterwards."""
    from gpt2core.engine import weights as checkpoint

    made = []

    def recording_copy(out, source):
        made.append(copy_into(out, source))
        return made[-1]

    copy_into = checkpoint.copy_into
    monkeypatch.setattr(checkpoint, "copy_into", recording_copy)
    params = gpt2core.load(tiny_dir, dtype=dtype).params
    made_ids = {id(a) for a in made}
    assert all(id(a) in made_ids for a in params.arrays())


def test_params_from_tensors_converts_dtype_and_layout():
    """The path that builds a model from arrays already in memory (torch's state dict in the property tests)."""
    from gpt2core.engine.weights import expected_shapes, params_from_tensors

    cfg = gpt2core.GPT2Config(vocab_size=11, n_positions=4, n_embd=6, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    rng = np.random.default_rng(0)
    tensors = {name: rng.standard_normal(shape) for name, shape in expected_shapes(cfg).items()}  # float64, row-major
    params = params_from_tensors(dict(tensors), cfg, np.dtype(np.float32), "in memory")
    assert all(a.dtype == np.float32 for a in params.arrays())
    w = params.blocks[0].mlp_proj.w
    assert w.flags.f_contiguous and not w.flags.c_contiguous
    np.testing.assert_array_equal(w, tensors["h.0.mlp.c_proj.weight"].astype(np.float32))
    assert params.wte.flags.c_contiguous


def test_read_tensors_empty_one_element_and_full_tensors_read_only(tmp_path):
    """Tensors with no element (not mapped: mmap refuses empty ranges), one element and many, the empty one
    first; `copy` gets each tensor's name and a read-only mapping of its bytes."""
    from gpt2core.engine.weights import read_tensors

    path = tmp_path / "model.safetensors"
    arrays = {"a_empty": np.zeros((0, 3), np.float32), "b_one": np.array([2.5], np.float64),
              "c_full": np.arange(6, dtype=np.float16).reshape(2, 3)}  # fmt: skip
    save_file(arrays, str(path))
    for name, a in read_tensors(path).items():
        assert a.dtype == arrays[name].dtype and a.shape == arrays[name].shape, name
        np.testing.assert_array_equal(a, arrays[name], err_msg=name)
    seen = {}

    def copy(name, mapped):
        seen[name] = mapped.flags.writeable
        return np.array(mapped)

    assert set(read_tensors(path, copy)) == set(arrays) == set(seen)
    assert not seen["b_one"] and not seen["c_full"]  # mapped read-only (the empty one is not mapped)


@pytest.mark.parametrize("rows", [1, 5, 32, 1000])
def test_copy_into_keeps_every_value_whatever_the_band_height(rows, monkeypatch):
    from gpt2core.engine import weights as checkpoint

    monkeypatch.setattr(checkpoint, "TRANSPOSE_ROWS", rows)
    source = np.random.default_rng(0).standard_normal((70, 9)).astype(np.float32)
    for dtype in (np.float32, np.float64):
        for order in ("C", "F"):
            out = np.empty(source.shape, dtype, order=order)
            assert checkpoint.copy_into(out, source) is out
            np.testing.assert_array_equal(out, source.astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_arena_packs_slots_on_cache_lines_from_a_huge_page(dtype):
    from gpt2core.engine.weights import HUGE_PAGE, SLOT_ALIGNMENT, weight_arena

    shapes = {"wte.weight": (5, 3), "h.0.mlp.c_fc.weight": (3, 7), "h.0.mlp.c_fc.bias": (7,), "empty": (0, 4),
              "h.0.attn.c_proj.weight": (3, 3), "ln_f.bias": (20,)}  # fmt: skip
    slots = weight_arena(shapes, np.dtype(dtype))
    assert list(slots) == list(shapes)
    for name, a in slots.items():
        assert a.shape == shapes[name] and a.dtype == dtype, name
    assert slots["h.0.mlp.c_fc.weight"].flags.f_contiguous and not slots["h.0.mlp.c_fc.weight"].flags.c_contiguous
    assert slots["wte.weight"].flags.c_contiguous and not slots["wte.weight"].flags.f_contiguous
    assert slots["wte.weight"].ctypes.data % HUGE_PAGE == 0
    arrays = [a for a in slots.values() if a.size]  # an empty array's address means nothing
    for a, b in zip(arrays, arrays[1:]):  # each slot on the first cache line after the one before it
        end = a.ctypes.data + a.nbytes
        assert b.ctypes.data == end + -end % SLOT_ALIGNMENT, (a.shape, b.shape)
    for i, a in enumerate(arrays):
        a[...] = i
    assert all((a == i).all() for i, a in enumerate(arrays))


@pytest.mark.parametrize("given, n_ctx", [({}, 1024), ({"n_positions": 64}, 64), ({"n_positions": 64, "n_ctx": 32}, 32)])
def test_published_config_completes_a_config_and_sets_n_ctx(given, n_ctx):
    """GPT-2's published fields where the config lacks them, the config's own where it has them, and n_ctx: its
    own, else n_positions, else GPT-2's 1024 (transformers' GPT-2 conversions read n_ctx)."""
    from gpt2core.engine.config import GPT2_PUBLISHED_FIELDS, published_config

    own = {**given, "layer_norm_epsilon": 1e-3}
    config = published_config(own)
    assert config == {**GPT2_PUBLISHED_FIELDS, **own, "n_ctx": n_ctx}
    assert config["layer_norm_epsilon"] == 1e-3 and config["model_type"] == "gpt2" and own == {**given, "layer_norm_epsilon": 1e-3}
