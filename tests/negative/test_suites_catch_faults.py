"""The suites must fail on a broken engine: faults from support/faults.py, injected without editing source.

(The full catalogue with checkpoints and margins is issue 5; these are the faults the property suite must
catch on its own, per issue 4, and the parity comparison must catch in-process.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.compare import assert_close
from support.faults import FAULTS, inject
from support.models import engine_model, hf_logits
from gpt2core.tolerances import LOGITS_TOL, scaled_atol

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("fault", ["scale_1_over_d", "no_causal_mask"])
def test_property_suite_alone_fails_on_fault(fault):
    env = {**os.environ, "GPT2CORE_FAULT": fault, "GPT2CORE_HYPOTHESIS_PROFILE": "ci"}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", str(TESTS / "property"), "-x", "-p", "no:cacheprovider"],
        capture_output=True, text=True, env=env, cwd=TESTS.parent,
    )  # fmt: skip
    assert f"FAULT INJECTED: {fault}" in r.stdout, f"fault not injected:\n{r.stdout[:2000]}"  # header line
    assert r.returncode == 1, f"property suite did not fail under {fault}:\n{r.stdout[-3000:]}"
    assert "1 failed" in r.stdout and "AssertionError" in r.stdout, r.stdout[-3000:]


# float64 catches every fault. float32 on GPT-2's initialisation does not see exact_gelu: activations
# are ~0.02 there, where erf and tanh GELU agree to ~1e-7 (issue 5 adds sharp, outlier-heavy test weights).
CASES = [(f, np.float64) for f in sorted(FAULTS)] + [(f, np.float32) for f in sorted(FAULTS) if f != "exact_gelu"]


@pytest.mark.parametrize("fault, dtype", CASES, ids=[f"{f}-{np.dtype(d).name}" for f, d in CASES])
def test_parity_comparison_fails_on_fault(tiny_dir, fault, dtype):
    model = engine_model(tiny_dir, dtype)
    ids = np.array([[15496, 13, 464, 2068, 7586, 21831]])
    ref = hf_logits(tiny_dir, ids, dtype)
    assert_close("logits", model(ids), ref, atol=scaled_atol(LOGITS_TOL, ref))  # the clean engine passes
    with inject(fault), pytest.raises(AssertionError, match="logits: shape"):
        assert_close("logits", model(ids), ref, atol=scaled_atol(LOGITS_TOL, ref))
