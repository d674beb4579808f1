"""Keep freed heap memory in the process: no page faults on every large per-frame buffer.

A 640x480 frame allocates several multi-megabyte buffers (point cloud, CDR serialisation,
message copies). glibc hands blocks that large out as fresh ``mmap`` regions and returns freed
heap tops to the kernel, so each frame pays a page fault per 4 KiB of them: measured, the
depth node's per-frame overhead apart from the model went from about 11 to 19 ms depending on
nothing but allocation order. The ROS 2 real-time guidance is to configure the allocator once
at start-up (``mallopt``: no mmap for blocks, no trimming), which makes steady-state frames
reuse the same memory. The cost is that the process keeps its peak heap size.

Called through ctypes because Python exposes no allocator settings; on a C library other than
glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc <malloc.h> parameter numbers
M_MMAP_MAX = -4


def keep_heap_memory() -> bool:
    """Make glibc serve every block from the heap and never trim it; True if glibc accepted both."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # no C library found, or not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, -1))
