"""llama.cpp for the tests: its model converter (examples/llama-cpp/convert.py fetches convert_hf_to_gguf.py and
the gguf-py package beside it from the llama-cpp-python sdist on PyPI, once per machine) and the example's
modules, imported from their files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from gpt2core.verification.atomic import build_once

from .models import CACHE, REPO

EXAMPLE = REPO / "examples" / "llama-cpp"
HOME = CACHE / "gpt2core-home"  # the tests' $GPT2CORE_HOME: converted GGUFs and the converter are kept there


def example_module(name: str):
    """examples/llama-cpp/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"llama_cpp_example_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def llama_cpp_dir() -> Path:
    """A directory holding llama.cpp's convert_hf_to_gguf.py, conversion/ and gguf-py/ (where convert.py keeps
    them under the tests' $GPT2CORE_HOME)."""
    convert = example_module("convert")
    return build_once(HOME / "llama.cpp" / f"converter-{convert.LLAMA_CPP_PYTHON}",
                      lambda p: (p / "convert_hf_to_gguf.py").is_file(), convert.fetch_converter)  # fmt: skip


def gguf_py():
    """The gguf package of llama.cpp's converter (its own copy, gguf-py/ beside convert_hf_to_gguf.py)."""
    directory = str(llama_cpp_dir() / "gguf-py")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    import gguf

    return gguf


def gguf_reader(path: Path):
    """gguf-py's GGUFReader (the converter's own copy) over a GGUF file."""
    return gguf_py().GGUFReader(str(path))
