"""Memory: what a verify run will hold, what the machine has, and what the run held at its peak.

A verify run holds, one after the other, never together: transformers' model (capturing the references),
then the engine's model (comparing). Besides the model of the moment it holds the references of one case
(transformers' checkpoints while they are written; the reference arrays and the engine's own checkpoints of
that case while they are compared). So its peak above the memory the process had before it started is
bounded by

    BOUND = WEIGHTS_FACTOR * max(transformers' weights, the engine's weights) + the references of one case

and `check_fits` refuses, before anything is loaded, a run whose estimate exceeds what the machine has free.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import resource
import sys

import numpy as np

from ..engine.weights import expected_shapes
from .errors import MemoryNeeded
from .subject import axes_of, checkpoint_names

# 1.25: the allowance over the weights that the run's other allocations (the largest comparison's temporaries,
# NumPy's and torch's workspaces, the tokenizer) must fit in; the bound, met with room on every shape
# (README, "The GPT-2 family").
WEIGHTS_FACTOR = 1.25
# What a process holds before a run starts: Python, NumPy, torch and transformers imported. Measured 0.37 GB
# (torch 2.13 CPU, transformers 5.24); 0.6 GB leaves room for a different build.
INTERPRETER_BYTES = 600 * 2**20
GB = 1e9


def weights_bytes(config, dtype) -> int:
    """Bytes of a GPT-2's weights in dtype (the tied head counted once)."""
    return sum(math.prod(shape) for shape in expected_shapes(config).values()) * np.dtype(dtype).itemsize


def case_bytes(config, batch: int, length: int, dtype) -> int:
    """Bytes of every checkpoint of one case of `batch` rows and `length` positions (subject.py's shapes)."""
    sizes = {"batch": batch, "position": length, "query": length, "key": length, "head": config.n_head,
             "dim": config.head_dim, "channel": config.n_embd, "token": config.vocab_size}  # fmt: skip
    total = 0
    for name in checkpoint_names(config.n_layer):
        wide = name.endswith(("mlp_fc", "mlp_act"))  # [B, T, F]
        total += math.prod(config.mlp_width if wide and axis == "channel" else sizes[axis] for axis in axes_of(name))
    return total * np.dtype(dtype).itemsize


def run_memory(config, case_shapes, dtypes, also_held_bytes: int = 0) -> dict:
    """The bound and the estimate of a verify run over cases of shapes [(B, T), ...] in each of dtypes;
    `also_held_bytes`: what a command holds beside one model (the fault catalogue's second engine, the
    benchmark's yardstick), added to both.

    The engine is assumed to hold weights of the size transformers' do. An engine reached through a command
    holds them in its own process instead (its peak is reported apart, children_peak_rss_bytes). Capturing a
    float32 set runs transformers in float64 too (its float32 budgets, gpt2core.verification.precision.budgets),
    one model and one case's float64 checkpoints at a time: for the bound, float32 counts as float64 (the
    engine's weights_bytes stay its own)."""
    widest = max((np.dtype(d) for d in dtypes), key=lambda d: d.itemsize)
    captured = max((np.dtype(np.float64 if np.dtype(d) == np.float32 else d) for d in dtypes), key=lambda d: d.itemsize)
    weights = weights_bytes(config, widest)  # the engine's
    references = max((case_bytes(config, b, t, captured) for b, t in case_shapes), default=0)
    bound = int(WEIGHTS_FACTOR * weights_bytes(config, captured)) + references + also_held_bytes
    return {"weights_bytes": weights, "case_references_bytes": references, "also_held_bytes": also_held_bytes,
            "bound_bytes": bound, "needed_bytes": INTERPRETER_BYTES + bound}  # fmt: skip


def available_bytes() -> int | None:
    """Memory this process can still take: the kernel's MemAvailable, less where a cgroup (a container's
    limit) allows less; None where neither can be read."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read())
        if limit != "max":
            left = int(limit) - used
            available = left if available is None else min(available, left)
    except (OSError, ValueError):
        pass
    return available


def check_fits(memory: dict, what: str, available: int | None = None) -> None:
    """Refuse, before anything is loaded, a run that needs more memory than is available (MemoryNeeded)."""
    available = available_bytes() if available is None else available
    if available is not None and memory["needed_bytes"] > available:
        parts = [f"{memory['weights_bytes'] / GB:.1f} GB of weights x {WEIGHTS_FACTOR}"]
        if memory["case_references_bytes"]:
            parts.append(f"{memory['case_references_bytes'] / GB:.1f} GB of references of the largest case")
        if memory["also_held_bytes"]:
            parts.append(f"{memory['also_held_bytes'] / GB:.1f} GB held beside them")
        parts.append(f"{INTERPRETER_BYTES / GB:.1f} GB for the interpreter and libraries")
        raise MemoryNeeded(f"{what} needs about {memory['needed_bytes'] / GB:.1f} GB of memory ({', '.join(parts)}) and "
                           f"{available / GB:.1f} GB is available; use a machine with more memory or a smaller run "
                           "(float32, fewer or shorter prompts)")  # fmt: skip


def give_back_freed_memory() -> None:
    """Collect garbage, then hand the C heap's free pages back to the kernel (glibc's malloc_trim; elsewhere
    nothing more). After transformers' model is released, 0.13 GB of 0.18 GB its run left in the heap on the
    355M shape came back this way, before the engine's weights are loaded."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Start measuring this process's peak anew (Linux: clear_refs 5 resets VmHWM); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """This process's peak resident set size since it started or since `reset_peak_rss` (Linux: VmHWM;
    elsewhere getrusage's lifetime peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return ru_maxrss_bytes(resource.RUSAGE_SELF)


def children_peak_rss_bytes() -> int:
    """The largest peak resident set size of this process's finished children (an engine's command)."""
    return ru_maxrss_bytes(resource.RUSAGE_CHILDREN)


def ru_maxrss_bytes(who: int) -> int:
    """getrusage's peak resident set size in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int:
    """The process's resident set size now (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()
