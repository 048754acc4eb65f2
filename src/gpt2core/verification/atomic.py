"""Writes that a later run sees whole or not at all.

Everything gpt2core writes for another run to read (reference sets, model directories, reports, JUnit
files) is written under a temporary name beside its destination and renamed into place at the end.
An exception or Ctrl-C removes the temporary; a process killed outright leaves a hidden
`.NAME.partial-*` entry that no reader accepts (a reference set without its manifest, a model directory
nobody names), never a half-written NAME.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path


def partial_name(path: Path) -> Path:
    """A fresh hidden sibling of `path` for its temporary: `.NAME.partial-<pid>-<random>`."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")


def check_new_or_empty_dir(path: Path) -> None:
    """Refuse a destination that is a file or a directory with something in it (nothing is overwritten)."""
    if path.is_dir() and any(path.iterdir()):
        raise FileExistsError(f"{path} is not empty; give a new or empty directory (nothing is overwritten)")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} is a file; give a new or empty directory")


@contextmanager
def atomic_directory(out_dir) -> Generator[Path]:
    """Yield a temporary directory beside `out_dir` to fill; renamed to `out_dir` (absent or empty) when the
    block ends, removed when it raises (Ctrl-C included)."""
    out_dir = Path(out_dir)
    check_new_or_empty_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(out_dir)
    tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, out_dir)  # atomic; replaces an empty directory, refuses a non-empty one
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_path(path) -> Generator[Path]:
    """Yield a temporary file name beside `path` to write; renamed to `path` when the block ends, removed when
    it raises."""
    path = Path(path)
    tmp = partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary beside it and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def build_once(path, is_built, build) -> Path:
    """`path`, built by `build(path)` unless `is_built(path)`, under a file lock beside it: concurrent processes
    (pytest -n, two commands at once) build it once and the others wait for it."""
    from filelock import FileLock

    path = Path(path)
    if not is_built(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.with_name(f".{path.name}.lock")):
            if not is_built(path):
                build(path)
    return path
