"""The conformance suite's parity tests (gpt2core.conformance.test_parity) on gpt2core's own engine, the
subject setup.cfg names: every checkpoint of the built-in tiny and stress models' cases, in the chained,
isolated and cached modes and greedy and sampled generation, as any engine's repository runs them."""

from gpt2core.conformance.test_parity import (  # noqa: F401
    pytest_generate_tests,
    test_cached_decoding,
    test_checkpoint,
    test_greedy_generation,
    test_sampled_generation,
)
