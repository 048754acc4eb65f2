"""The conformance suite's parity tests (gpt2core.conformance.test_parity) on gpt2core's own engine, the
subject setup.cfg names: every checkpoint of the built-in tiny and stress models' cases, in the chained,
isolated and cached modes and greedy and sampled generation, imported as any engine's repository imports them."""

from gpt2core.conformance.test_parity import *  # noqa: F401,F403
