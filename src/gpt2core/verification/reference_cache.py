"""Reference sets captured once and kept: `gpt2core verify` and the conformance suite reuse a set captured on the
same weights, cases and dtype by the same transformers, torch and capture code, on the same kind of CPU.

A set lives in <cache>/references/<model>-<dtype>-<key>, the key a sha256 of everything its files depend on
(`content_key`), so a stale set is never found: a changed weights file, case, version, thread count, CPU or
capture code is a miss. Every use goes through load_references' checks (the weights' sha256 in the manifest;
each file's sha256 when it is read), a set damaged on disk is rebuilt, and sets are written whole or not at all
under a file lock, so concurrent processes (pytest -n workers, two verify runs) build one and share it.
The cache is capped (`GPT2CORE_REFERENCE_CACHE_GB`, default 10 GB): after a set is added, the least recently
used others are removed until the rest fit. `gpt2core cache list` and `gpt2core cache clear` show and empty it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from . import capture as capture_module
from . import reference_set as reference_set_module
from .atomic import build_once
from .errors import ReferencesError
from .model_dir import gpt2core_home, read_model_dir
from .reference_set import MANIFEST, load_references, write_references

DEFAULT_CAP_GB = 10.0
USED = ".last-used"  # touched on every use: the least recently used set is removed first


def cache_root() -> Path:
    """Where verify keeps its reference sets: $GPT2CORE_HOME/references (see model_dir.gpt2core_home)."""
    return gpt2core_home()


def cap_bytes() -> int:
    """The cache's size cap: GPT2CORE_REFERENCE_CACHE_GB gigabytes (default 10)."""
    raw = os.environ.get("GPT2CORE_REFERENCE_CACHE_GB", str(DEFAULT_CAP_GB))
    try:
        gb = float(raw)
    except ValueError:
        raise ValueError(f"GPT2CORE_REFERENCE_CACHE_GB={raw!r}: expected a number of gigabytes") from None
    return int(gb * 1e9)


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (float32 bits depend on the kernels it runs): from cpuinfo, else the platform's."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def content_key(model_dir, dtype, cases) -> str:
    """sha256 (20 hex digits) of everything a reference set's files depend on."""
    import torch

    parts = [
        read_model_dir(model_dir).weights_sha256,
        np.dtype(dtype).name,
        [[c.name, c.input_ids.tolist(), None if c.attention_mask is None else c.attention_mask.tolist()] for c in cases],
        [installed(p) for p in ("torch", "transformers", "numpy")],
        [hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for m in (capture_module, reference_set_module)],
        torch.get_num_threads(),  # float32 bits depend on the reduction order, so on threads and on the CPU's
        # kernels: a set cached by an earlier session (its host not recorded) differed from transformers' output
        # here by up to 4e-6 while every other part of the key matched; rebuilt, it agreed
        [cpu_name(), torch.backends.cpu.get_cpu_capability()],
    ]  # weights, dtype, cases, versions, the capture code, threads, CPU: a list, so no label is part of the key
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def running_a_mutant(environ=os.environ) -> bool:
    """True inside mutmut's run of one mutant (or its forced-failure check): such a process writes no cache.
    `environ`: this process's environment (a test passes its own: one must not change mutmut's variable)."""
    return is_a_mutants_run(environ.get("MUTANT_UNDER_TEST", ""))


def is_a_mutants_run(name: str) -> bool:
    """Whether mutmut's MUTANT_UNDER_TEST value `name` is a mutant's run ("<function>__mutmut_<n>") or its
    forced-failure check ("fail"), not its stats or clean runs."""
    return "__mutmut_" in name or name == "fail"


def cached_references(cache: Path, model_dir, dtype, cases, private_dir, *, command: str, capped: bool):
    """The reference set of `cases` on model_dir in dtype, from cache/references (built once there under a file
    lock); `private_dir()` gives a directory for a mutmut mutant's own set (a mutant writes nothing shared; every
    caller gives one: a miss under a mutant crashed when verify gave none). With `capped`, the cache is then
    trimmed to its cap (cap_bytes), least recently used first. `command`: what made the set, recorded in its manifest.
    Every caller says both (verify caps its users' cache; the test suites and the conformance suite do not)."""
    md = read_model_dir(model_dir)
    final = cached_path(cache, md, dtype, cases)
    name = final.name
    if running_a_mutant():
        if (final / MANIFEST).is_file():
            return load_references(final, md)
        out = Path(private_dir()) / name
        write_references(md, out, cases, dtype, command="pytest (private to a mutmut mutant)")
        return load_references(out, md)
    if (final / MANIFEST).is_file():
        try:
            refs = load_references(final, md)
            touch(final)
            return refs
        except ReferencesError:  # damaged on disk: rebuilt below, never used as is
            shutil.rmtree(final)
    # written whole or not at all (write_references), once under a file lock (concurrent processes share the cache)
    build_once(final, lambda p: (p / MANIFEST).is_file(), lambda p: write_references(md, p, cases, dtype, command=command))
    touch(final)
    if capped:
        trim(Path(cache), keep=final)
    return load_references(final, md)


def cached_path(cache: Path, model_dir, dtype, cases) -> Path:
    """Where the set of `cases` on model_dir in dtype is (or would be) kept in `cache`."""
    md = read_model_dir(model_dir)
    return Path(cache) / "references" / f"{md.path.name}-{np.dtype(dtype).name}-{content_key(md, dtype, cases)}"


def is_cached(cache: Path, model_dir, dtype, cases) -> bool:
    """Whether the set is in the cache (its manifest written: sets appear whole)."""
    return (cached_path(cache, model_dir, dtype, cases) / MANIFEST).is_file()


def touch(path: Path) -> None:
    (path / USED).write_text(f"{time.time()}\n")


def last_used(path: Path) -> float:
    try:
        return float((path / USED).read_text())
    except (OSError, ValueError):
        return (path / MANIFEST).stat().st_mtime if (path / MANIFEST).is_file() else 0.0


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def entries(cache: Path) -> list[dict]:
    """The cached sets, least recently used first: path, model, dtype, cases, bytes, last used."""
    root = Path(cache) / "references"
    out = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not path.is_dir() or path.name.startswith("."):
            continue
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            model, dtype, cases = manifest["model"]["path"], manifest["dtype"], [c["name"] for c in manifest["cases"]]
        except (OSError, ValueError, KeyError, TypeError):
            model, dtype, cases = "(unreadable manifest)", "?", []
        out.append({"path": str(path), "model": model, "dtype": dtype, "cases": cases, "bytes": size_of(path),
                    "last_used": last_used(path)})  # fmt: skip
    return sorted(out, key=lambda e: e["last_used"])


def trim(cache: Path, keep: Path | None = None, cap: int | None = None) -> list[str]:
    """Remove the least recently used sets until the rest fit in `cap` (default cap_bytes()); never `keep`.
    Returns the removed paths."""
    cap = cap_bytes() if cap is None else cap
    sets = entries(cache)
    total = sum(e["bytes"] for e in sets)
    removed = []
    for e in sets:
        if total <= cap:
            break
        if keep is not None and Path(e["path"]) == Path(keep):
            continue
        shutil.rmtree(e["path"], ignore_errors=True)
        total -= e["bytes"]
        removed.append(e["path"])
    return removed


def clear(cache: Path) -> list[str]:
    """Remove every cached set, an empty one too; returns their paths."""
    return trim(cache, cap=-1)  # below every total: with a cap of 0, a set of 0 bytes after the others was kept
