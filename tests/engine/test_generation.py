"""Generation options: sampling reproducibility, filters, end-of-text, no state shared between calls."""

from __future__ import annotations

import numpy as np
import pytest

import gpt2core
from gpt2core.engine.generate import top_k_filter, top_p_filter


@pytest.fixture(scope="module")
def model(tiny_dir):
    return gpt2core.load(tiny_dir)


def test_same_seed_same_tokens_and_calls_do_not_share_state(model):
    ids = np.array([15496, 13])
    a = model.generate(ids, 15, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=4)
    model.generate(np.array([5, 6, 7, 8, 9]), 7)  # an unrelated request in between
    b = model.generate(ids, 15, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=4)
    c = model.generate(ids, 15, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=5)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    np.testing.assert_array_equal(model(ids), model(ids))  # bit-identical logits


def test_greedy_equals_argmax_of_full_forward(model):
    ids = np.array([15496, 13, 464])
    out = model.generate(ids, 6)
    for t in range(len(ids), len(out)):
        assert out[t] == model(out[:t])[0, -1].argmax()


def test_stops_at_end_of_text(model):
    ids = np.array([15496, 13])
    first = int(model(ids)[0, -1].argmax())
    out = model.generate(ids, 10, eos_token_id=first)
    assert out.tolist() == [15496, 13, first]
    assert len(model.generate(ids, 10, eos_token_id=first, stop_at_eos=False)) == 12


def test_zero_new_tokens_returns_prompt(model):
    assert model.generate(np.array([1, 2]), 0).tolist() == [1, 2]


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = np.log(np.array([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    assert np.isfinite(top_k_filter(logits, 2)).tolist() == [[True, True, False, False, False]]
    assert np.isfinite(top_p_filter(logits, 0.6)).tolist() == [[True, True, False, False, False]]
    assert np.isfinite(top_p_filter(logits, 0.3)).tolist() == [[True, False, False, False, False]]
    assert np.isfinite(top_p_filter(logits, 1.0)).all()


def test_sampled_draws_follow_each_rows_own_distribution():
    """Inverse-CDF sampling: each row's draws follow its softmax, independently of the other rows."""
    from gpt2core.engine.generate import next_tokens

    probs = np.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.1, 0.7], [0.5, 0.3, 0.2, 0.0]])
    logits = np.log(probs + 1e-12).astype(np.float32)
    rng, n = np.random.default_rng(0), 4000
    draws = np.stack([next_tokens(logits, rng, True, 1.0, 0, 1.0) for _ in range(n)])
    assert draws.shape == (n, 3) and draws.min() >= 0 and draws.max() <= 3
    for b in range(3):
        freq = np.bincount(draws[:, b], minlength=4) / n
        assert np.all(np.abs(freq - probs[b]) <= 4 * np.sqrt(probs[b] * (1 - probs[b]) / n) + 1e-3), (b, freq)
    agree = (draws[:, 0] == draws[:, 2]).mean()  # same distribution, independent draws: P(agree) = sum p^2
    assert abs(agree - (probs[0] ** 2).sum()) < 0.05, agree


def test_a_draw_past_the_last_cumulative_sum_picks_the_last_token():
    """Rounding can leave u * sum(p) above the last cumulative sum; the draw is then the last token, never V."""
    from gpt2core.engine.generate import next_tokens

    class TopOfInterval:
        def random(self, shape):
            return np.full(shape, np.nextafter(1.0, 2.0))

    logits = np.zeros((2, 5), np.float32)
    assert next_tokens(logits, TopOfInterval(), True, 1.0, 0, 1.0).tolist() == [4, 4]


def test_default_sampling_is_temperature_1_without_top_k(model):
    ids = np.array([15496, 13])
    plain = model.generate(ids, 12, do_sample=True, seed=3)
    assert plain.tolist() == model.generate(ids, 12, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, seed=3).tolist()
    assert plain.tolist() != model.generate(ids, 12, do_sample=True, top_k=1, seed=3).tolist()


def test_a_finished_row_keeps_emitting_end_of_text_while_others_continue(model):
    rows = np.array([[15496, 13], [464, 2068]])
    sample = dict(do_sample=True, temperature=2.0, seed=11)  # sampled, so a row that went on would show it
    free = model.generate(rows, 6, stop_at_eos=False, **sample)
    eos = int(free[0, 2])  # row 0's first token; the same draws make it again below and end that row
    assert eos not in free[1].tolist() and len(set(free[0, 3:].tolist())) > 1
    out = model.generate(rows, 6, eos_token_id=eos, **sample)
    assert out.shape == (2, 8) and out[0, 2:].tolist() == [eos] * 6
    assert out[1].tolist() == free[1].tolist()  # the other row is untouched


def test_the_config_end_of_text_is_the_default(model, tiny_dir):
    import dataclasses

    ids = np.array([15496, 13])
    first = int(model(ids)[0, -1].argmax())
    ending = gpt2core.GPT2(dataclasses.replace(model.config, eos_token_id=first), model.params)
    assert ending.generate(ids, 10).tolist() == [15496, 13, first]


def test_generation_may_fill_every_position_and_uses_a_cache_of_that_size(model, monkeypatch):
    n = model.config.n_positions
    sizes = []
    new_cache = model.new_cache
    monkeypatch.setattr(model, "new_cache", lambda b, capacity=None: sizes.append(capacity) or new_cache(b, capacity))
    assert len(model.generate(np.arange(n - 2), 2, stop_at_eos=False)) == n
    assert sizes == [n]
    model.generate(np.arange(5), 3)
    assert sizes[-1] == 8


def test_top_k_and_top_p_on_several_rows_with_ties():
    logits = np.array([[3.0, 1.0, 2.0, 0.0, 5.0, 4.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    assert np.isfinite(top_k_filter(logits, 3)).tolist() == [[True, False, False, False, True, True], [True] * 6]
    assert top_k_filter(logits, 0) is logits and top_k_filter(logits, 6) is logits
    ties = np.zeros((1, 32))  # probabilities 1/32: every cumulative sum is exact
    kept = np.isfinite(top_p_filter(ties, 0.5))[0]  # cum <= 0.5 removed, in index order for exact ties
    assert kept.tolist() == [False] * 16 + [True] * 16
    far = np.array([[0.0, -1000.0]])  # the second token's probability underflows to 0
    assert top_p_filter(far, 1.0) is far


def test_temperature_keeps_the_logits_dtype_and_top_k_picks_the_k_largest():
    from gpt2core.engine.generate import apply_temperature

    assert apply_temperature(np.ones((1, 3), np.float32), 2.0).dtype == np.float32
    logits = np.array([[0.3, 0.9, 0.1, 0.7, 0.5, 0.2, 0.8]])  # 7 tokens: -k and +k pick different slots
    assert np.isfinite(top_k_filter(logits, 3)).tolist() == [[False, True, False, True, False, False, True]]


@pytest.mark.parametrize("k", [1, 10, 500, 999])
def test_top_k_keeps_exactly_the_k_largest_of_a_long_row(k):
    logits = np.stack([np.random.default_rng(k).permutation(1000), np.random.default_rng(k + 1).permutation(1000)])
    kept = np.isfinite(top_k_filter(logits.astype(np.float32), k))
    assert (kept.sum(axis=1) == k).all(), kept.sum(axis=1)
    assert (logits[kept].reshape(2, k) >= 1000 - k).all()  # distinct values 0..999: the k largest are >= 1000 - k


@pytest.mark.parametrize(("path", "message"), [
    (lambda ids: ids, "path_ids [1, 3] must continue input_ids [1, 3] by at least one token"),
    (lambda ids: np.concatenate([ids, ids], axis=0)[:, :4], "path_ids [2, 3] must continue input_ids [1, 3]"),
    (lambda ids: np.concatenate([ids + 1, ids[:, :1]], axis=1), "path_ids [1, 4] must continue input_ids [1, 3]"),
    (lambda ids: np.concatenate([ids, np.zeros((1, 126), np.int64)], axis=1), "path of 129 tokens exceeds n_positions=128"),
])  # fmt: skip
def test_replay_refuses_a_path_that_does_not_continue_the_prompt(model, path, message):
    from gpt2core.engine.generate import replay_scores
    from gpt2core.errors import InputError

    ids = np.array([[464, 3290, 318]])
    with pytest.raises(InputError) as e:
        replay_scores(model, ids, path(ids), 1.0, 0, 1.0)
    assert str(e.value).startswith(message), e.value


def test_replay_scores_are_what_sampled_generation_draws_from(model, monkeypatch):
    """Replaying generate's own sampled path gives, per step, the scores next_tokens drew from; the cache holds
    exactly the path."""
    from gpt2core.engine import generate as g

    seen, sizes = [], []
    real_scores, real_new_cache = g.sampling_scores, type(model).new_cache
    monkeypatch.setattr(g, "sampling_scores", lambda *a: seen.append(real_scores(*a)) or seen[-1])
    ids = np.array([[464, 3290, 318], [50256, 15496, 13]])
    mask = np.array([[1, 1, 1], [0, 1, 1]])
    path = model.generate(ids, 4, attention_mask=mask, do_sample=True, temperature=0.8, top_k=20, top_p=0.9,
                          seed=3, stop_at_eos=False)  # fmt: skip
    drawn = np.stack(seen)
    monkeypatch.setattr(type(model), "new_cache", lambda self, *a, **k: sizes.append(k.get("capacity")) or real_new_cache(self, *a, **k))
    replayed = g.replay_scores(model, ids, path, 0.8, 20, 0.9, attention_mask=mask)
    assert replayed.shape == drawn.shape == (4, 2, 50257) and replayed.dtype == np.float32
    np.testing.assert_array_equal(replayed, drawn)
    assert sizes == [7]
