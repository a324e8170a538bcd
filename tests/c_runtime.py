"""The C runtime as a shared library, for kernel unit tests through ctypes.

`runtime()` compiles every `backends/c/runtime/*.c` once per test session (gcc, -O2,
-Wall -Wextra -Werror) and loads it. Kernels run on the calling thread as a team of one
core (the default team size). `pointer(array)` passes a NumPy array.
"""

from __future__ import annotations

import ctypes
import functools
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RUNTIME = Path(__file__).resolve().parent.parent / "backends" / "c" / "runtime"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-fPIC", "-shared", "-pthread"]


@functools.cache
def _build() -> ctypes.CDLL | str:
    """The loaded library, or the compiler's error (cached too, so that a broken
    runtime fails every test at once instead of recompiling for each)."""
    build = Path(tempfile.mkdtemp(prefix="edge_runtime_"))
    library = build / "libedge_runtime.so"
    sources = sorted(str(p) for p in RUNTIME.glob("*.c"))
    result = subprocess.run(
        ["gcc", *CFLAGS, f"-I{RUNTIME}", *sources, "-o", str(library), "-lm"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        return result.stderr
    return ctypes.CDLL(str(library))


def runtime() -> ctypes.CDLL:
    library = _build()
    if isinstance(library, str):
        raise RuntimeError(f"the C runtime does not compile:\n{library}")
    return library


def pointer(array: np.ndarray) -> ctypes.c_void_p:
    assert array.flags.c_contiguous, "kernels take dense row-major arrays"
    return ctypes.c_void_p(array.ctypes.data)


def int_array(values, length: int = 6) -> ctypes.Array:
    values = list(values) + [0] * (length - len(values))
    return (ctypes.c_int32 * length)(*values)


class Broadcast(ctypes.Structure):
    """`edge_broadcast_t`"""

    _fields_ = [
        ("rank", ctypes.c_int32),
        ("shape", ctypes.c_int32 * 6),
        ("lhs_strides", ctypes.c_int32 * 6),
        ("rhs_strides", ctypes.c_int32 * 6),
    ]
