"""The process-level CPU settings of a run (synthset.device)."""
import ctypes
import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A child process: how many mmapped blocks a 64 MiB tensor adds (glibc's mallinfo2 hblks),
# with and without reuse_freed_memory, after one such tensor was made and freed.
CHILD = r"""
import ctypes, os, sys, torch
from synthset.device import reuse_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
on = reuse_freed_memory() if sys.argv[1] == "on" else False
x = torch.empty(16 * 2**20).fill_(1.0); del x
before = libc.mallinfo2().hblks
y = torch.empty(16 * 2**20).fill_(1.0)
print(on, libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_reuse_freed_memory_serves_large_tensors_from_the_heap():
    if not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("glibc without mallinfo2")
    out = {}
    for mode in ("off", "on"):
        p = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
        on, added = p.stdout.split()
        out[mode] = (on == "True", int(added))
    assert out["off"] == (False, 1)  # glibc's default: a 64 MiB block is its own mapping
    assert out["on"] == (True, 0)    # with the setting it comes from the heap


def test_reuse_freed_memory_can_be_switched_off(monkeypatch):
    from synthset.device import reuse_freed_memory
    monkeypatch.setenv("SYNTHSET_MALLOC", "system")
    assert reuse_freed_memory() is False
