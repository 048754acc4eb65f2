"""Engines people deploy, verified as they run: CTranslate2 (examples/ctranslate2: ragged rows batched
right-padded by CTranslate2 itself, logits and greedy generation) and ONNX Runtime (examples/onnxruntime:
transformers' GPT-2 exported with torch.onnx.export, every tensor a module boundary exposes, graph
optimisations off and at ORT_ENABLE_ALL), on the 124M shape in float32, every built-in case, the left-padded
batch included. Nothing imitates transformers' padding rows: padding is not compared.

Each test asserts what was compared, entry by entry (checkpoints x cases x real positions, counted here from
the reference set), so a run that silently compared less fails. The wheels (`ctranslate2`, `onnxruntime`,
`onnx`) are in the test extra: without them these tests fail, they never skip.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from gpt2core.cli import main
from gpt2core.verification.batch_layout import token_mask
from gpt2core.verification.subject import axes_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def refs124(gpt2_124m_dir, tmp_path_factory):
    from support.references import reference_set

    return gpt2_124m_dir, reference_set(gpt2_124m_dir, np.float32, tmp_path_factory)


@pytest.fixture(autouse=True)
def home(monkeypatch):
    """Converted and exported models are kept beside the test models, built once per machine."""
    from support.models import CACHE

    monkeypatch.setenv("GPT2CORE_HOME", str(CACHE / "gpt2core-home"))


def real_entries(refs, names) -> int:
    """How many entries of `names` the model defines over every case: real queries (and real keys)."""
    total = 0
    for case in refs.cases:
        tokens = token_mask(case)
        per_row = tokens.sum(axis=1)
        for name in names:
            shape = case.array(name).shape
            axes = axes_of(name)
            if "key" in axes and "query" in axes:
                total += int((per_row**2).sum()) * shape[1]
            elif "key" in axes or axes[1] == "head":  # k, v, q: [B, H, T, D]
                total += int(per_row.sum()) * shape[1] * shape[3]
            else:
                total += int(per_row.sum()) * shape[-1]
    return total


def verify_json(capsys, *args) -> tuple[int, dict, str]:
    rc = main(["verify", *map(str, args), "--json"])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out else None), out.err


def test_ctranslate2_passes_every_case_with_its_greedy_generation(refs124, capsys, monkeypatch):
    model, refs = refs124
    monkeypatch.chdir(EXAMPLES / "ctranslate2")  # --subject finds the adapter in the current directory
    monkeypatch.setattr(sys, "path", list(sys.path))
    rc, report, err = verify_json(capsys, "--model", model, "--references", refs.root, "--dtype", "float32",
                                  "--subject", "ct2_subject:make_subject")  # fmt: skip
    assert rc == 0, err
    (run,) = report["runs"]
    assert run["verdict"] == "PASS" and run["subject"].startswith("CTranslate2")
    assert run["cases_run"] == [c.name for c in refs.cases] and "padded_batch" in run["cases_run"]
    assert run["checkpoints_provided"] == 1 and run["not_provided"] == refs.checkpoint_names[:-1]
    assert run["entries_compared"] == real_entries(refs, ["logits"]) and run["entries_excluded"] > 0
    greedy = [g for g in run["generate"] if g["ok"]]
    assert run["modes"]["generate"]["ok"] and len(greedy) == sum(c.greedy is not None for c in refs.cases) == 5
    assert any(g["case"] == "padded_batch" for g in greedy)


@pytest.mark.parametrize("optimization", ["none", "all"])
def test_onnxruntime_passes_every_checkpoint_it_exposes_on_every_case(refs124, capsys, optimization):
    model, refs = refs124
    engine = EXAMPLES / "onnxruntime"
    command = f"{sys.executable} {engine / 'dump.py'} {{model}} {{references}} {{dumps}} --optimization {optimization}"
    rc, report, err = verify_json(capsys, "--model", model, "--references", refs.root, "--dtype", "float32",
                                  "--map", engine / "map.json", "--subject-cmd", command)  # fmt: skip
    assert rc == 0, err
    (run,) = report["runs"]
    assert run["verdict"] == "PASS" and run["cases_run"] == [c.name for c in refs.cases]
    scores = [n for n in refs.checkpoint_names if n.endswith("attn_scores")]
    assert run["not_provided"] == scores  # computed inside transformers' attention function, not exposed
    compared = [n for n in refs.checkpoint_names if n not in scores]
    assert run["entries_compared"] == real_entries(refs, compared) and run["entries_excluded"] > 0
    assert run["worst_margin"] < 0.5
