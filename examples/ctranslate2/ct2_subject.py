"""CTranslate2 as a gpt2core subject: the `ctranslate2` wheel's Generator on a GPT-2 directory converted by
`ct2-transformers-converter`, verified as CTranslate2 runs it.

CTranslate2 batches ragged rows itself: it is given each row's tokens (no padding, no attention mask) and
returns logits right-padded, [B, longest row, V]. The subject says so (`batch_layout = "right-padded"`) and
gpt2core takes each row's positions from there; what CTranslate2 leaves after a row's last token is never
compared. It exposes the logits only (`provides`), and greedy generation through `generate_batch`.

    gpt2core verify --model DIR --dtype float32 --subject ct2_subject:make_subject      (run from this folder)
    GPT2CORE_CT2_COMPUTE_TYPE=int8_float32 ...                                         CTranslate2's int8

The converted model is kept in $GPT2CORE_HOME/ctranslate2/, one per weights and compute type.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from gpt2core.verification.atomic import atomic_directory, build_once
from gpt2core.verification.batch_layout import token_mask
from gpt2core.verification.errors import SubjectError
from gpt2core.verification.model_dir import gpt2core_home, read_model_dir

EOS = 50256  # GPT-2's <|endoftext|>: transformers' generate pads a finished row with it


def converted(model_dir, quantization: str) -> Path:
    """The CTranslate2 model of model_dir (ct2-transformers-converter), built once per weights and quantization."""
    md = read_model_dir(model_dir)
    key = hashlib.sha256(json.dumps(md.weights_sha256, sort_keys=True).encode()).hexdigest()[:16]
    out = gpt2core_home() / "ctranslate2" / f"{key}-{quantization}"

    def convert(path: Path) -> None:
        with atomic_directory(path) as tmp:
            tmp.rmdir()  # the converter wants to create its output directory itself
            converter = Path(sys.executable).with_name("ct2-transformers-converter")
            subprocess.run([str(converter), "--model", str(md.path), "--output_dir", str(tmp), "--quantization", quantization],
                           check=True, capture_output=True)  # fmt: skip

    return build_once(out, lambda p: (p / "model.bin").is_file(), convert)


class CTranslate2Subject:
    """The subject protocol over ctranslate2.Generator (see the module docstring)."""

    capabilities = frozenset({"generate"})
    batch_layout = "right-padded"
    provides = frozenset({"logits"})

    def __init__(self, model_dir, compute_type: str = "float32"):
        import ctranslate2

        path = converted(model_dir, "float32")  # weights stored in float32; CTranslate2 quantizes at load
        self.generator = ctranslate2.Generator(str(path), device="cpu", compute_type=compute_type, intra_threads=2)
        self.vocabulary = json.loads((path / "vocabulary.json").read_text())
        self.name = f"CTranslate2 {ctranslate2.__version__} ({compute_type})"
        self.precision = {"float32": "float32", "int8_float32": "int8", "int8": "int8"}.get(compute_type, compute_type)

    @staticmethod
    def rows(case) -> list[list[int]]:
        """Each row's tokens: CTranslate2 is given no padding."""
        return [ids[mask].tolist() for ids, mask in zip(case.input_ids, token_mask(case))]

    def checkpoints(self, case) -> dict[str, np.ndarray]:
        """logits [B, longest row, V], right-padded, as forward_batch returns them."""
        return {"logits": np.asarray(self.generator.forward_batch(self.rows(case)))}

    def generate(self, case, max_new_tokens: int) -> np.ndarray:
        """Greedy continuation: ids [B, longest row + n], each row's prompt then its n new tokens (right-padded).

        generate_batch counts max_length from each row's first token and keeps the prompt in the result, so
        every row is asked for enough and cut at its own length + n; a row that met <|endoftext|> early is
        filled with it, as transformers does."""
        rows = self.rows(case)
        longest = max(map(len, rows))
        results = self.generator.generate_batch([[self.vocabulary[i] for i in r] for r in rows], sampling_topk=1,
                                                max_length=max_new_tokens + longest - 1, include_prompt_in_result=True)  # fmt: skip
        out = np.full((len(rows), longest + max_new_tokens), EOS, dtype=np.int64)
        for b, (row, result) in enumerate(zip(rows, results)):
            ids = result.sequences_ids[0][: len(row) + max_new_tokens]
            out[b, : len(ids)] = ids
        return out


def make_subject(model_dir, dtype) -> CTranslate2Subject:
    """The factory `gpt2core verify --subject ct2_subject:make_subject` calls: float32 references only (it says
    so in `make_subject.dtypes`, below, which verify and the conformance suite read before building anything)."""
    if np.dtype(dtype) != np.float32:
        raise SubjectError(f"CTranslate2 computes in float32 or below, not {np.dtype(dtype).name}: run with --dtype float32")
    return CTranslate2Subject(model_dir, os.environ.get("GPT2CORE_CT2_COMPUTE_TYPE", "float32"))


make_subject.dtypes = ("float32",)  # asked before any reference set is built: no float64 references for nothing
