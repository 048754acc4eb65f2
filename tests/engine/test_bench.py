"""`gpt2core bench` runs end to end and reports every figure the issue names (no timing is asserted)."""

from __future__ import annotations

import json

import pytest

import gpt2core

from gpt2core.bench import TARGETS
from gpt2core.cli import main

KEYS = [
    "decode_tok_s", "decode_tok_s_transformers", "decode_bandwidth_fraction", "prefill_128_s",
    "prefill_128_s_transformers", "peak_rss_bytes", "weight_bytes", "kv_cache_bytes", "threads", "torch",
    "numpy", "blas", "weight_pass_s", "matmul_gflops", "prefill_128_matmul_floor_s", "decode_tokens_match",
]  # fmt: skip


def test_bench_json_has_every_figure_and_consistent_ratios(tiny_dir, capsys):
    rc = main(["bench", "--model", str(tiny_dir), "--json", "--new-tokens", "4", "--repeats", "1", "--threads", "1"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    missing = [k for k in KEYS if k not in r]
    assert not missing, f"bench --json lacks {missing}"
    assert "prefill_512_s" not in r  # the tiny shape has 128 positions: no 512-token prefill is claimed
    assert r["threads"] == 1 and r["blas_threads"] == 1
    assert r["weight_bytes"] == gpt2core.load(tiny_dir).params.nbytes()
    assert r["decode_tok_s"] == pytest.approx(4 / r["decode_s"])
    assert r["decode_bandwidth_fraction"] == pytest.approx(r["weight_pass_s"] * r["decode_tok_s"])
    assert r["decode_speedup_vs_transformers"] == pytest.approx(r["decode_tok_s"] / r["decode_tok_s_transformers"])
    assert r["prefill_128_ratio_vs_transformers"] == pytest.approx(r["prefill_128_s"] / r["prefill_128_s_transformers"])
    assert all(r[k] > 0 for k in KEYS if isinstance(r[k], float))


def test_bench_text_lists_the_targets(tiny_dir, capsys):
    assert main(["bench", "--model", str(tiny_dir), "--new-tokens", "2", "--repeats", "1", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "targets (issue 6):" in text and "decode 2 tokens (tok/s)" in text
    shown = [key for key, *_ in TARGETS if key in text]
    assert "decode_bandwidth_fraction" in shown and "prefill_128_ratio_vs_transformers" in shown


def test_prefill_matmul_floor_counts_the_blocked_attention_products():
    """The floor times the products gpt2core performs: each query block against the keys up to its last query."""
    from gpt2core.bench import prefill_matmuls
    from gpt2core.engine.config import GPT2Config

    cfg = GPT2Config(n_layer=2, n_head=2, n_embd=8, vocab_size=11, n_positions=400, bos_token_id=0, eos_token_id=0)
    per_layer = [
        ((300, 8), (8, 24), "F"),
        ((2, 128, 4), (2, 4, 128), "C"), ((2, 128, 128), (2, 128, 4), "C"),
        ((2, 128, 4), (2, 4, 256), "C"), ((2, 128, 256), (2, 256, 4), "C"),
        ((2, 44, 4), (2, 4, 300), "C"), ((2, 44, 300), (2, 300, 4), "C"),
        ((300, 8), (8, 8), "F"), ((300, 8), (8, 32), "F"), ((300, 32), (32, 8), "F"),
    ]  # fmt: skip
    assert prefill_matmuls(cfg, 300, block=128) == per_layer * 2 + [((1, 8), (8, 11), "F")]


def test_interleaved_medians_alternate_the_functions_after_one_untimed_round():
    from gpt2core.bench import interleaved_medians

    calls = []
    medians = interleaved_medians([lambda: calls.append("a"), lambda: calls.append("b")], repeats=3)
    assert calls == ["a", "b"] * 4 and len(medians) == 2 and all(m >= 0 for m in medians)
