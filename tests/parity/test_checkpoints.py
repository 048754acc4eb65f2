"""Every checkpoint of every layer against transformers' own forward pass, float32 and float64.

chained:  the engine runs from token ids; each checkpoint is compared with the reference.
isolated: each engine stage gets the reference's input for that stage, so a failure names one stage.
Cases (gpt2core.verification.cases.default_cases): 1 token, "Hello." = [15496, 13], a sentence, 128 random
tokens, a left-padded batch of three prompts; plus all n_positions positions (1024 on the 124M shape),
compared in memory, and incremental decoding with the KV cache from positions > 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.models import engine_model, engine_subject
from support.references import comparisons

from gpt2core import checkpoint_names
from gpt2core.verification.capture import capture
from gpt2core.verification.cases import random_case
from gpt2core.verification.reference_set import CapturedCase
from gpt2core.verification.verify import compare_cached, compare_case, first_divergence


def failures_of(by_case: dict, checkpoint: str) -> list[str]:
    """Messages for every case where `checkpoint` fails, each with the chain's first diverging checkpoint."""
    failures = []
    for case, comps in by_case.items():
        (c,) = [c for c in comps if c.name == checkpoint]
        if not c.ok:
            first = first_divergence(comps)
            failures.append(f"case {case}: {c.message()}\n  first diverging checkpoint of the case: {first.message()}")
    return failures


@pytest.mark.parametrize("mode", ["chained", "isolated"])
def test_checkpoint(model_dir, dtype, checkpoint, mode, reference_set):
    model = engine_model(model_dir, dtype)
    by_case = comparisons(model, reference_set, mode)
    assert sorted(by_case) == sorted(c.name for c in reference_set.cases)
    failures = failures_of(by_case, checkpoint)
    assert not failures, "\n".join(failures)


def test_every_engine_checkpoint_has_a_reference(model_dir, dtype, reference_set):
    model = engine_model(model_dir, dtype)
    expected = checkpoint_names(model.config.n_layer)
    for case in reference_set.cases:
        assert list(case.files) == expected, f"case {case.name}: references {list(case.files)} != engine {expected}"


def test_hello_is_the_real_vocabulary(model_dir, dtype, reference_set):
    assert reference_set.case("hello").input_ids.tolist() == [[15496, 13]]
    assert reference_set.case("one_token").input_ids.tolist() == [[15496]]
    assert reference_set.case("random_tokens").input_ids.shape == (1, 128)
    padded = reference_set.case("padded_batch")
    assert padded.attention_mask is not None and not padded.attention_mask.all()


def test_full_length_every_checkpoint(model_dir, dtype):
    """All n_positions positions (1024 on the 124M shape), chained and isolated, compared in memory."""
    model = engine_model(model_dir, dtype)
    cfg = model.config
    case = random_case("full_length", cfg.n_positions, cfg.vocab_size, seed=1024)
    captured = CapturedCase(case, capture(model_dir, case, dtype))
    failures = []
    for mode in ("chained", "isolated"):
        comps = compare_case(engine_subject(model_dir, dtype), captured, mode, checkpoint_names(cfg.n_layer))
        failures += [f"{mode}: {c.message()}" for c in comps if not c.ok]
    del captured
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case_name", ["sentence", "random_tokens", "padded_batch"])
def test_cache_decoding_every_checkpoint(model_dir, dtype, reference_set, case_name):
    """Prefill, then decode one token at a time with the KV cache (after an unrelated request); every
    checkpoint of every step equals the full forward pass at that position (gpt2core.verification.verify.compare_cached)."""
    comps = compare_cached(engine_subject(model_dir, dtype), reference_set.case(case_name), reference_set.checkpoint_names,
                           reference_set.config["vocab_size"])  # fmt: skip
    assert comps, "no decoding step was compared"
    failures = [c.message() for c in comps if not c.ok]
    assert not failures, "\n".join(failures[:20])


class NewKeysOnly:
    """gpt2core's engine, except that each decoding step returns k and v of its own position alone, not its cache's."""

    def __init__(self, subject):
        self.subject, self.name, self.capabilities = subject, "new keys only", subject.capabilities

    def checkpoints(self, case):
        return self.subject.checkpoints(case)

    def decode(self, case, split):
        for rec in self.subject.decode(case, split):
            yield {n: (a[:, :, -1:] if n.split(".")[-1] in ("k", "v") else a) for n, a in rec.items()}


def test_a_decoding_step_whose_keys_are_not_its_caches_fails_saying_so(model_dir, dtype, reference_set):
    comps = compare_cached(NewKeysOnly(engine_subject(model_dir, dtype)), reference_set.case("sentence"),
                           reference_set.checkpoint_names, reference_set.config["vocab_size"])  # fmt: skip
    bad = [c for c in comps if not c.ok]
    assert bad and {c.name.split("@")[0].split(".")[-1] for c in bad} == {"k", "v"}
    assert "1 key position(s): a decoding step's k is its cache's, positions 0 .. " in bad[0].message(), bad[0].message()
