"""Reading one checkpoint from an engine's dumps (DumpSubject.read): each way a map says where and how a file was
written gives back the engine's own array, exactly, in gpt2core's layout and the reference dtype.

tests/engine/test_layouts.py and test_dumps.py prove the same through whole verify runs (0.5-4 s each); these read
the files directly on the short cases (support.references.SHORT_PROMPTS: a one-row case and a padded batch of two),
so a mutant of the reader costs milliseconds of its test.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.models import engine_checkpoints, engine_model

from gpt2core.verification.dumps import FORMAT, DumpMap, DumpSubject
from gpt2core.verification.errors import DumpError


@pytest.fixture(scope="module")
def setup(tiny_dir, tmp_path_factory):
    """(cases by name, the engine's checkpoints by case, the model's config): gpt2core's engine in float64."""
    from support.references import short_reference_set

    from gpt2core.verification.model_dir import read_model_dir

    refs = short_reference_set(tiny_dir, np.float64, tmp_path_factory)
    recs = engine_checkpoints(engine_model(tiny_dir, np.float64), refs.cases)
    return {c.name: c for c in refs.cases}, recs, read_model_dir(tiny_dir).config


CASES = ("hello", "padded_batch")  # one row of two tokens, then two rows of different lengths


def subject(root, config, checkpoints: dict, **top) -> DumpSubject:
    """The dumps under root read by a map of `checkpoints` (and the logits, which every map provides: never read here
    unless `checkpoints` says where)."""
    dump_map = {"format": FORMAT, "engine": "read test", "dtype": "float64", **top, "checkpoints": {"logits": {}, **checkpoints}}
    return DumpSubject(root, DumpMap(dump_map), config)


def assert_reads(dumps: DumpSubject, case, name: str, expected: np.ndarray, dtype=np.float64):
    got = dumps.checkpoint(case, name)
    assert got.dtype == dtype and got.shape == expected.shape, (name, case.name, got.dtype, got.shape, expected.shape)
    assert np.array_equal(got, expected.astype(dtype)), (name, case.name, np.max(np.abs(got - expected)))


def test_per_layer_files_numbered_from_one(setup, tmp_path):
    """`{case}` is the case's directory, `{i}` the layer plus layer_offset; a model-wide checkpoint is its own file."""
    cases, recs, config = setup
    for name in CASES:
        (tmp_path / name).mkdir()
        for i in range(config.n_layer):
            np.save(tmp_path / name / f"block{i + 1}.mlp_act.npy", recs[name][f"h{i}.mlp_act"])
        np.save(tmp_path / name / "final.npy", recs[name]["logits"])
    dumps = subject(tmp_path, config, {"logits": {"file": "{case}/final.npy"},
                                       "h{i}.mlp_act": {"file": "{case}/block{i}.mlp_act.npy", "layer_offset": 1}})  # fmt: skip
    for name in CASES:
        for i in range(config.n_layer):
            assert_reads(dumps, cases[name], f"h{i}.mlp_act", recs[name][f"h{i}.mlp_act"])
        assert_reads(dumps, cases[name], "logits", recs[name]["logits"])
    assert dumps.files_not_read() == []


def test_a_stacked_file_of_every_other_layer_after_an_offset(setup, tmp_path):
    """Layers 1, 3, ... of a stacked `l b t c` file from index layer_offset on: the k-th provided layer is at k + offset
    (index 0 holds NaN, read by nothing)."""
    cases, recs, config = setup
    provided = list(range(1, config.n_layer, 2))
    for name in CASES:
        (tmp_path / name).mkdir()
        layers = [recs[name][f"h{i}.ln_2"] for i in provided]
        np.save(tmp_path / name / "ln_2.npy", np.stack([np.full_like(layers[0], np.nan), *layers]))
    dumps = subject(tmp_path, config, {"h{i}.ln_2": {"file": "{case}/ln_2.npy", "layout": "l b t c",
                                                     "layers": {"start": 1, "step": 2}, "layer_offset": 1}})  # fmt: skip
    assert sorted(dumps.provides) == [*(f"h{i}.ln_2" for i in provided), "logits"]
    for name in CASES:
        for i in provided:
            assert_reads(dumps, cases[name], f"h{i}.ln_2", recs[name][f"h{i}.ln_2"])


def test_a_one_row_case_written_without_its_batch_axis(setup, tmp_path):
    """single_row_without_batch: the one-row case's file has no batch axis, the two-row case's has one; reading the
    one-row case first leaves the map's layout as it was for the next."""
    cases, recs, config = setup
    for name in CASES:
        (tmp_path / name).mkdir()
        for file, checkpoint in (("attn_probs0.npy", "h0.attn_probs"), ("embeddings0.npy", "embeddings")):
            array = recs[name][checkpoint]
            np.save(tmp_path / name / file, array[0] if array.shape[0] == 1 else array)
    dumps = subject(tmp_path, config, {"h{i}.attn_probs": {"file": "{case}/attn_probs{i}.npy", "layers": [0]},
                                       "embeddings": {"file": "{case}/embeddings0.npy", "layout": "b t c"}},
                    single_row_without_batch=True)  # fmt: skip
    for name in CASES:
        assert_reads(dumps, cases[name], "h0.attn_probs", recs[name]["h0.attn_probs"])
        assert_reads(dumps, cases[name], "embeddings", recs[name]["embeddings"])
    plain = subject(tmp_path, config, {"embeddings": {"file": "{case}/embeddings0.npy"}})
    with pytest.raises(DumpError) as raised:  # without the key, a missing axis is an error naming the file
        plain.checkpoint(cases["hello"], "embeddings")
    assert str(raised.value).startswith(f"dump file {tmp_path / 'hello' / 'embeddings0.npy'}: "), raised.value


def test_a_one_row_cases_greedy_ids_and_sampled_scores_written_without_their_batch_axis(setup, tmp_path):
    """single_row_without_batch holds for the per-row files of generation too: the one-row case's greedy ids
    [T + n] and a sampled step's scores [V] are read as [1, T + n] and [1, V], the two-row case's as written."""
    cases, _, config = setup
    rng = np.random.default_rng(0)
    written = {}
    for name in CASES:
        case = cases[name]
        ids = np.concatenate([case.input_ids, rng.integers(0, 50, (case.input_ids.shape[0], 3))], axis=1)
        scores = rng.standard_normal((case.input_ids.shape[0], 50))
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "generated_ids.npy", ids[0] if ids.shape[0] == 1 else ids)
        np.save(tmp_path / name / "sample.scores@step=0.npy", scores[0] if scores.shape[0] == 1 else scores)
        written[name] = ids, scores
    dumps = subject(tmp_path, config, {}, single_row_without_batch=True)
    for name in CASES:
        ids, scores = written[name]
        got = dumps.generate(cases[name], 3)
        assert got.shape == ids.shape and np.array_equal(got, ids), (name, got.shape, ids.shape)
        got = dumps.sampled_step(cases[name], "sample.scores@step=0")
        assert got.shape == scores.shape and np.array_equal(got, scores), (name, got.shape, scores.shape)


def test_unscaled_scores_are_scaled_and_half_precision_files_read_as_the_reference_dtype(setup, tmp_path):
    """Scores written before the 1/sqrt(head_dim) scale (head_dim 16: a scale of 1/4, exact) come back scaled, the
    masked ones as written; a float16 map's files come back as float32, the dtype of its references."""
    cases, recs, config = setup
    assert config.head_dim == 16
    for name in CASES:
        (tmp_path / name).mkdir()
        scores = recs[name]["h1.attn_scores"]
        masked = scores == np.finfo(scores.dtype).min
        np.save(tmp_path / name / "scores1.npy", np.where(masked, scores, np.where(masked, 0.0, scores) * 4))
        np.save(tmp_path / name / "ln_f.npy", recs[name]["ln_f"].astype(np.float16))
    dumps = subject(tmp_path, config, {"h{i}.attn_scores": {"file": "{case}/scores{i}.npy", "unscaled": True, "layers": [1]}})
    half = subject(tmp_path, config, {"ln_f": {"file": "{case}/ln_f.npy"}}, dtype="float16")
    for name in CASES:
        assert_reads(dumps, cases[name], "h1.attn_scores", recs[name]["h1.attn_scores"])
        assert_reads(half, cases[name], "ln_f", recs[name]["ln_f"].astype(np.float16), dtype=np.float32)
    np.save(tmp_path / "hello" / "ln_f.npy", recs["hello"]["ln_f"])  # float64: not a float16 engine's file
    with pytest.raises(DumpError, match=f"dump file {tmp_path / 'hello' / 'ln_f.npy'}: dtype float64"):
        half.checkpoint(cases["hello"], "ln_f")


def test_unscaled_scores_masked_at_a_threshold_stay_as_written(setup, tmp_path):
    """An engine masking with -1e10 (masked_scores at_or_below -1e9): its masked scores are not scaled, the rest are."""
    cases, recs, config = setup
    expected = {}
    for name in CASES:
        (tmp_path / name).mkdir()
        scores = recs[name]["h0.attn_scores"]
        masked = scores == np.finfo(scores.dtype).min
        assert masked.any(), name  # the causal mask
        expected[name] = np.where(masked, -1e10, scores)
        np.save(tmp_path / name / "scores0.npy", np.where(masked, -1e10, np.where(masked, 0.0, scores) * 4))
    dumps = subject(tmp_path, config, {"h{i}.attn_scores": {"file": "{case}/scores{i}.npy", "unscaled": True, "layers": [0]}},
                    masked_scores={"at_or_below": -1e9})  # fmt: skip
    for name in CASES:
        assert_reads(dumps, cases[name], "h0.attn_scores", expected[name])


def test_a_decoding_step_reads_its_keys_up_to_its_position(setup, tmp_path):
    """<case>/decode/t<t>/: a step's keys are its cache's, positions 0 .. t; its queries the one position t."""
    cases, recs, config = setup
    case, T = cases["sentence"], cases["sentence"].input_ids.shape[1]
    k, ln_1 = recs["sentence"]["h0.k"], recs["sentence"]["h0.ln_1"]
    for t in range(2, T):
        (tmp_path / "sentence" / "decode" / f"t{t}").mkdir(parents=True)
        np.save(tmp_path / "sentence" / "decode" / f"t{t}" / "h0.k.npy", k[:, :, : t + 1])
        np.save(tmp_path / "sentence" / "decode" / f"t{t}" / "h0.ln_1.npy", ln_1[:, t : t + 1])
    dumps = subject(tmp_path, config, {"h{i}.k": {"layers": [0]}, "h{i}.ln_1": {"layers": [0]}}, modes=["chained", "cached"])
    for t in range(2, T):
        assert np.array_equal(dumps.step_checkpoint(case, "h0.k", t), k[:, :, : t + 1]), t
        assert np.array_equal(dumps.step_checkpoint(case, "h0.ln_1", t), ln_1[:, t : t + 1]), t


def test_isolated_stages_are_read_from_the_cases_stage_directory(setup, tmp_path):
    """`{case}` is <case>/stage for the engine's own stages on the reference's inputs, and each read file is recorded."""
    cases, recs, config = setup
    for name in CASES:
        (tmp_path / name / "stage").mkdir(parents=True)
        np.save(tmp_path / name / "h1.mlp_out.npy", recs[name]["h1.mlp_out"])
        np.save(tmp_path / name / "stage" / "h1.mlp_out.npy", recs[name]["h1.mlp_out"] * 2)
    dumps = subject(tmp_path, config, {"h{i}.mlp_out": {"layers": [1]}}, modes=["chained", "isolated"])
    for name in CASES:
        assert np.array_equal(dumps.stage("h1.mlp_out", cases[name], None), recs[name]["h1.mlp_out"] * 2)
    assert dumps.files_not_read() == [f"{name}/h1.mlp_out.npy" for name in CASES]
