"""The C runtime as a shared library, for kernel unit tests through ctypes.

`runtime()` compiles every `backends/c/runtime/*.c` once per test session (gcc, -O2,
-Wall -Wextra -Werror) and loads it. Kernels run on the calling thread as a team of one
core (the default team size). `pointer(array)` passes a NumPy array.
`c_struct("edge_linear_t")` is the ctypes form of a parameter struct, read from the
runtime's headers, so a test cannot pass a struct laid out differently from the C.
"""

from __future__ import annotations

import ctypes
import functools
import re
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


_C_TYPES = {
    "int32_t": ctypes.c_int32, "float": ctypes.c_float, "uint8_t": ctypes.c_uint8,
    "const int32_t *": ctypes.c_void_p, "const float *": ctypes.c_void_p,
}
_STRUCT = re.compile(r"typedef struct \{\n(.*?)\n\} (\w+);", re.S)
_DECLARATION = re.compile(r"^\s*(const \w+ \*|\w+) ?([^;]+);", re.M)
_DECLARATOR = re.compile(r"(\w+)(?:\[(\d+)\])?")


_DEFINE = re.compile(r"^#define (\w+) (\d+)$", re.M)


@functools.cache
def _struct_bodies() -> dict[str, tuple[str, str]]:
    """The body of every `typedef struct {...} name;` in the runtime's headers, with
    its header's name; integer `#define`s of the headers substituted."""
    texts = {h.name: h.read_text() for h in sorted(RUNTIME.glob("*.h"))}
    macros = {k: v for text in texts.values() for k, v in _DEFINE.findall(text)}
    bodies = {}
    for header, text in texts.items():
        for body, name in _STRUCT.findall(text):
            body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
            bodies[name] = (header, re.sub(r"\b[A-Z_][A-Z0-9_]*\b",
                                           lambda m: macros.get(m[0], m[0]), body))
    return bodies


def _struct_fields(name: str) -> list[tuple[str, object]]:
    """The ctypes fields of the runtime's struct `name`."""
    header, body = _struct_bodies()[name]
    fields: list[tuple[str, object]] = []
    for type_, declarators in _DECLARATION.findall(body):
        c_type = _C_TYPES[type_ if "*" in type_ else type_.strip()]
        for declarator in declarators.split(","):
            match = _DECLARATOR.fullmatch(declarator.strip())
            assert match, f"{header}: {name}: cannot read '{declarator}'"
            field, length = match.groups()
            fields.append((field, c_type * int(length) if length else c_type))
    return fields


@functools.cache
def c_struct(name: str) -> type[ctypes.Structure]:
    """The ctypes form of the runtime's struct `name` (from its header)."""
    return type(name, (ctypes.Structure,), {"_fields_": _struct_fields(name)})


Broadcast = c_struct("edge_broadcast_t")
