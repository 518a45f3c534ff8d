import subprocess
import sys

import pytest

# A child process allocates and frees a 24 MB block, then reports how much of it stayed resident.
CHILD = """
import ctypes, sys
from faceqan.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else None
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
before = rss()
block = libc.malloc(24 * 2**20)
ctypes.memset(block, 1, 24 * 2**20)
libc.free(block)
print(applied, (rss() - before) / 2**20)
"""


def kept_megabytes(apply: bool) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, "1" if apply else "0"], capture_output=True, text=True, check=True).stdout.split()
    return out[0], float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings: Linux only")
@pytest.mark.slow
def test_freed_blocks_stay_in_the_heap():
    applied, kept = kept_megabytes(True)
    if applied != "True":
        pytest.skip("this libc is not glibc: keep_freed_memory does nothing here")
    assert kept > 20  # the freed 24 MB stayed resident, ready for the next batch
    _, kept_by_default = kept_megabytes(False)
    assert kept_by_default < 4  # glibc's default hands an mmap-served block back at once


def test_cli_applies_it(monkeypatch):
    from faceqan import cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True))
    assert cli.main(["models"]) == 0
    assert calls == [True]

