"""Keep freed memory in the process instead of handing it back to the operating system.

A training step allocates and frees the same large tensors every time (activations, gradient
buffers: 13.6 MB each for AdK's hidden features [213, 100, 10, 16] in float32). glibc's malloc
serves blocks that large with ``mmap`` and returns them with ``munmap`` (or trims the heap), so
every step touches fresh pages and pays a page fault per 4 KiB: ``fill_`` of such a tensor ran
at about 1.2 GB/s instead of memory speed. Setting glibc's ``M_MMAP_MAX`` to 0 (every block
from the heap) and ``M_TRIM_THRESHOLD`` to 2 GiB (the heap is not shrunk while less than that
is free at its top) lets the second and later steps reuse the pages of the first. The process's
resident memory then stays at its peak, as it does with PyTorch's caching allocators on GPUs.
Nothing computed changes.

This changes the whole process's allocator, so the library never calls it on its own:
:func:`graphdyn.training.run.train` and ``prepare`` leave malloc alone. The program entry points
call :func:`keep_freed_memory`: ``graphdyn train``, each cell process of ``graphdyn benchmark``
(``python -m graphdyn.benchmark.cell run``) and ``benchmarks/estag_step.py``. A script that
trains through the library can call it first to get the same speed. Set
``GRAPHDYN_KEEP_MEMORY=0`` to leave malloc as it is. On a C library other than glibc it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

ENV = "GRAPHDYN_KEEP_MEMORY"
TRIM_THRESHOLD = 2**31 - 1  #: mallopt takes a C int


def _mallopt():
    """The C library's ``mallopt(int param, int value) -> int``, or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def keep_freed_memory() -> bool:
    """Configure glibc's malloc as the module docstring says (process-wide; for program entry
    points only); True when it was set, False when ``GRAPHDYN_KEEP_MEMORY`` is off or there is
    no ``mallopt``."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    ok_mmap = mallopt(M_MMAP_MAX, 0) == 1  # mallopt returns 1 on success
    ok_trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return ok_mmap and ok_trim
