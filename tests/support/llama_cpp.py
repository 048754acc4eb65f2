"""llama.cpp's model converter (convert_hf_to_gguf.py and the gguf-py package beside it), taken from the
llama-cpp-python sdist on PyPI (its vendor/llama.cpp/), fetched with pip once per machine into the test cache.
Nothing is compiled: the converter is plain Python."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from gpt2core.verification.atomic import atomic_directory, build_once

from .models import CACHE

LLAMA_CPP_PYTHON = "0.3.36"  # the sdist whose vendor/llama.cpp is used (pinned: the converter changes often)
MEMBERS = ("convert_hf_to_gguf.py", "gguf-py/", "conversion/")  # what convert_hf_to_gguf.py imports


def llama_cpp_dir() -> Path:
    """A directory holding llama.cpp's convert_hf_to_gguf.py and gguf-py/, from llama-cpp-python's sdist."""

    def fetch(path: Path) -> None:
        with tempfile.TemporaryDirectory() as download, atomic_directory(path) as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                            "-d", download, f"llama-cpp-python=={LLAMA_CPP_PYTHON}"], check=True)  # fmt: skip
            (sdist,) = Path(download).glob("llama_cpp_python-*.tar.gz")
            prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
            with tarfile.open(sdist) as tar:
                for member in tar.getmembers():
                    relative = member.name[len(prefix) :] if member.name.startswith(prefix) else None
                    if relative and any(relative == m or relative.startswith(m) for m in MEMBERS) and member.isfile():
                        member.name = relative
                        tar.extract(member, tmp, filter="data")

    return build_once(CACHE / f"llama.cpp-from-llama-cpp-python-{LLAMA_CPP_PYTHON}",
                      lambda p: (p / "convert_hf_to_gguf.py").is_file(), fetch)  # fmt: skip


def gguf_reader(path: Path):
    """gguf-py's GGUFReader (the converter's own copy) over a GGUF file."""
    directory = str(llama_cpp_dir() / "gguf-py")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    import gguf

    return gguf.GGUFReader(str(path))
