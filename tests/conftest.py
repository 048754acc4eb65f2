"""Fixtures shared by every suite. Reference models are built by transformers (tests/support/models.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # makes `support` importable from every suite

if os.environ.get("MUTANT_UNDER_TEST"):  # forked mutmut children hang on multithreaded torch ops
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_addoption(parser):
    parser.addoption(
        "--gpt2core-model",
        default=os.environ.get("GPT2CORE_MODEL"),
        help="run the parity suite against this GPT-2 directory too (or set GPT2CORE_MODEL), e.g. trained gpt2",
    )


@pytest.fixture(scope="session")
def tiny_dir():
    from support.models import hf_model_dir

    return hf_model_dir("tiny")


@pytest.fixture(scope="session")
def gpt2_124m_dir():
    from support.models import hf_model_dir

    return hf_model_dir("124M")
