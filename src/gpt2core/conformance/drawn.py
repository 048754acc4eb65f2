"""Drawn GPT-2s on disk: a model directory written by transformers for a drawn config and weights, and the
reference set of drawn inputs captured from transformers' own forward pass on it."""

from __future__ import annotations

from pathlib import Path

from ..verification.cases import Case
from ..verification.reference_set import References, load_references, write_references
from .strategies import Inputs, Weights


def write_model(out_dir: Path, cfg: dict, weights: Weights) -> Path:
    """transformers' GPT2LMHeadModel(GPT2Config(**cfg)) with `weights`, saved with save_pretrained (float32)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging

    from ..verification.stress import sharpen

    logging.disable_progress_bar()  # save_pretrained's "Writing model shards"
    torch.manual_seed(weights.seed % 2**31)
    model = GPT2LMHeadModel(GPT2Config(**cfg, initializer_range=weights.init_std))
    if weights.init_std != 0.02:  # non-trivial LayerNorm gains and biases, so swapped or missing ones show
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "ln_" in name or name.endswith("bias"):
                    p.add_(torch.randn_like(p) * weights.init_std)
    if weights.sharp:
        C = cfg["n_embd"]
        sharpen(model, weights.seed % 2**31, sorted({0, C // 2}) if C > 1 else [0])
    model.save_pretrained(out_dir)
    return Path(out_dir)


def cases_of(inputs: list[Inputs], prefix: str = "c") -> list[Case]:
    return [Case(f"{prefix}{i}", x.input_ids.astype("int64"), x.attention_mask) for i, x in enumerate(inputs)]


def write_example(work: Path, cfg: dict, weights: Weights, cases: list[Case], dtype: str, references: bool = True) -> References:
    """work/model (the drawn model) and work/references (the cases; with references, transformers' every
    checkpoint of each in `dtype`), loaded back with load_references' checks."""
    from ..verification.hf import forget_hf_model

    model_dir = write_model(work / "model", cfg, weights)
    write_references(model_dir, work / "references", cases, dtype, command="pytest --pyargs gpt2core.conformance",
                     checkpoints=references, generation=False)  # fmt: skip
    forget_hf_model(model_dir)  # one model per example: none is kept
    return load_references(work / "references", model_dir)


def keep(work: Path) -> Path:
    """Rename a failed example's directory to failed-<name> beside it (kept for the command a failure prints)."""
    return work.rename(work.parent / f"failed-{work.name}")
