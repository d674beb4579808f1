"""The depth node's allocator setting takes effect on glibc (run in a child: it is process-wide)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")
def test_keep_heap_memory_is_accepted_by_glibc_and_the_process_keeps_working():
    code = ("from mf_ros.heap import keep_heap_memory; import numpy as np\n"
            "assert keep_heap_memory() is True\n"
            "total = sum(float(np.ones(2_000_000).sum()) for _ in range(5))  # large blocks still allocate\n"
            "print(total)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == 10_000_000.0
