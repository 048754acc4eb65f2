"""A GPT-2 model directory (transformers' save_pretrained, `gpt2core init-model`, a trained gpt2) -> GGUF, the way
llama.cpp's users make one.

    python convert.py MODEL_DIR OUT.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|...]

f32, f16, bf16 and q8_0 come from llama.cpp's own convert_hf_to_gguf.py (`--outtype`); every other type is
quantized from the f32 GGUF by llama.cpp itself (llama_model_quantize, as `llama-quantize`), with every 2-D
weight in that type (`pure`: llama-quantize would otherwise keep the tied embedding/output matrix in q6_K).
The converter is the one in llama-cpp-python's sdist (vendor/llama.cpp/convert_hf_to_gguf.py with the
conversion/ and gguf-py/ packages it imports: PyPI's gguf 0.19.0 lacks what this converter uses), fetched with
pip once into $GPT2CORE_HOME/llama.cpp/. Needs llama-cpp-python (pinned in gpt2core's `llama-cpp` extra).

`converted(model_dir, type)` keeps one GGUF per weights and type in $GPT2CORE_HOME/llama.cpp/ (dump.py uses it
when given a model directory).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"  # the sdist whose converter is used (pinned: the converter changes often)
CONVERTER_FILES = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")  # the converter and what it imports
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")  # convert_hf_to_gguf.py --outtype; the rest via llama_model_quantize


def fetch_converter(path: Path) -> None:
    """llama.cpp's convert_hf_to_gguf.py, conversion/ and gguf-py/ from the llama-cpp-python sdist on PyPI, into `path`
    (written whole or not at all)."""
    from gpt2core.verification.atomic import atomic_directory

    with tempfile.TemporaryDirectory() as download, atomic_directory(path) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "-d", download, f"llama-cpp-python=={LLAMA_CPP_PYTHON}"], check=True)  # fmt: skip
        (sdist,) = Path(download).glob("llama_cpp_python-*.tar.gz")
        prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                relative = member.name[len(prefix) :] if member.name.startswith(prefix) else None
                if relative and member.isfile() and any(relative == m or relative.startswith(m) for m in CONVERTER_FILES):
                    member.name = relative
                    tar.extract(member, tmp, filter="data")


def converter_dir() -> Path:
    """Where convert_hf_to_gguf.py is kept: $GPT2CORE_HOME/llama.cpp/converter-<llama-cpp-python version>."""
    from gpt2core.verification.atomic import build_once
    from gpt2core.verification.model_dir import gpt2core_home

    return build_once(gpt2core_home() / "llama.cpp" / f"converter-{LLAMA_CPP_PYTHON}",
                      lambda p: (p / "convert_hf_to_gguf.py").is_file(), fetch_converter)  # fmt: skip


def quantize(f32: Path, out: Path, gguf_type: str) -> None:
    """llama.cpp's own quantizer (llama-quantize's llama_model_quantize): f32 GGUF -> `gguf_type`, every 2-D weight."""
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{gguf_type.upper()}", None)
    if ftype is None:
        known = sorted(n[len("LLAMA_FTYPE_MOSTLY_") :].lower() for n in dir(llama_cpp) if n.startswith("LLAMA_FTYPE_MOSTLY_"))
        raise SystemExit(f"convert.py: unknown GGUF type {gguf_type!r} (known: {', '.join(known)})")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.pure = ftype, True
    status = llama_cpp.llama_model_quantize(str(f32).encode(), str(out).encode(), params)
    if status != 0:
        raise SystemExit(f"convert.py: llama_model_quantize to {gguf_type} failed with status {status}")


def convert(model_dir: Path, out: Path, gguf_type: str = "f32", converter: Path | None = None) -> None:
    """model_dir -> out (a GGUF of `gguf_type`)."""
    converter = converter or converter_dir()
    outtype = gguf_type if gguf_type in CONVERTER_TYPES else "f32"
    with tempfile.TemporaryDirectory() as tmp:
        first = out if outtype == gguf_type else Path(tmp) / "f32.gguf"
        done = subprocess.run([sys.executable, str(converter / "convert_hf_to_gguf.py"), str(model_dir), "--outfile",
                               str(first), "--outtype", outtype], capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise SystemExit(f"convert.py: convert_hf_to_gguf.py failed on {model_dir}: {tail}")
        if first != out:
            quantize(first, out, gguf_type)


def converted(model_dir: Path, gguf_type: str) -> Path:
    """The GGUF of model_dir's weights in `gguf_type`, converted once into $GPT2CORE_HOME/llama.cpp/."""
    from gpt2core.verification.atomic import atomic_path, build_once
    from gpt2core.verification.model_dir import gpt2core_home, read_model_dir

    md = read_model_dir(model_dir)
    key = hashlib.sha256(json.dumps(md.weights_sha256, sort_keys=True).encode()).hexdigest()[:16]

    def build(path: Path) -> None:
        with atomic_path(path) as tmp:
            convert(md.path, tmp, gguf_type)

    return build_once(gpt2core_home() / "llama.cpp" / f"{key}-{LLAMA_CPP_PYTHON}-{gguf_type}.gguf", Path.is_file, build)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a GPT-2 model directory")
    parser.add_argument("out", type=Path, help="the GGUF file to write")
    parser.add_argument("--type", default="f32", help="f32 (default), f16, bf16, q8_0 (the converter's); q4_0, q4_1, "
                        "q5_0, q5_1, ... (llama.cpp's quantizer)")  # fmt: skip
    parser.add_argument("--converter", type=Path, help="a directory holding convert_hf_to_gguf.py (default: fetched)")
    args = parser.parse_args(argv)
    convert(args.model, args.out, args.type.lower(), args.converter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
