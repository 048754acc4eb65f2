"""mutmut's main process backed by transparent huge pages before it forks one child per mutant.

`fork()` copies the parent's page tables: one entry per 4 KiB page of anonymous memory, and mutmut's main process
holds torch, transformers and every test module (about 1 GiB after its stats pass). On a virtual machine each copied
entry is dear: measured on a 2-core AMD EPYC guest (Linux 6.18, 2026-12-06), forking that process and exiting took
43 ms, a mutant's whole session of one 0.01 s test 84 ms. With its heap collapsed into 2 MiB pages (one entry each)
first: 7 ms and 49 ms. A child that writes to a huge page (a reference count) gets a private 4 KiB copy, as before.

Linux only, and only where transparent huge pages may be asked for (`/sys/kernel/mm/transparent_hugepage/enabled`
not `never`); MADV_COLLAPSE needs Linux 6.1. Anywhere else `madvise` refuses and nothing changes: the collapse only
changes how the memory is mapped, never what it holds.
"""

from __future__ import annotations

import ctypes
import sys

from gpt2core.engine.weights import HUGE_PAGE  # 2 MiB: the transparent huge page the engine's weights start on

MADV_HUGEPAGE = 14  # <sys/mman.h>: back this range with huge pages from now on
MADV_COLLAPSE = 25  # Linux >= 6.1: back it with huge pages now, copying what it holds


def anonymous_ranges(maps: str) -> list[tuple[int, int]]:
    """(start, end) of each writable anonymous mapping in `maps` (the text of /proc/<pid>/maps: the heap and the
    unnamed mappings, where Python's and NumPy's allocations live), trimmed inward to whole huge pages; mappings
    smaller than one huge page once trimmed are left out."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split()
        if len(fields) < 5 or "w" not in fields[1]:
            continue
        name = fields[5] if len(fields) > 5 else ""
        if name and name != "[heap]":  # files, stacks, vdso: not the heap a fork copies entry by entry
            continue
        low, high = (int(address, 16) for address in fields[0].split("-"))
        low = -(-low // HUGE_PAGE) * HUGE_PAGE
        high = high // HUGE_PAGE * HUGE_PAGE
        if high > low:
            ranges.append((low, high))
    return ranges


def collapse_into_huge_pages() -> int:
    """This process's anonymous memory marked for huge pages and collapsed into them now; returns how many ranges
    the kernel collapsed (0 where it cannot: another OS, THP off, Linux < 6.1)."""
    if not sys.platform.startswith("linux"):
        return 0
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    with open("/proc/self/maps") as f:
        ranges = anonymous_ranges(f.read())
    collapsed = 0
    for low, high in ranges:
        madvise(low, high - low, MADV_HUGEPAGE)
        collapsed += madvise(low, high - low, MADV_COLLAPSE) == 0
    return collapsed
