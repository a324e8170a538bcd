"""Builds and runs a generated C project on the host, through its Makefile.

`build(directory, binary)` makes `network_test` (`-O2 -Wall -Wextra -Werror`) or
`network_test_asan` (AddressSanitizer + UBSan, `-fno-sanitize-recover=all`) with the
host C compiler (`host_compiler()`: `$CC`, else `gcc`, else `cc`); `run(directory, ...)`
runs the binary for some steps and returns what it printed, the losses, and the
parameters (`--dump-params`) and outputs (`--dump-outputs`) it wrote. The tests and
`edge_opt.testing.c_differential` share them; the project's own `make host` is the same
build for a user.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_opt.backends.c.project import dump_file_names

BINARIES = ("network_test", "network_test_asan")
"""The host binaries of the generated Makefile: plain, and with the sanitizers."""

SANITIZER_MARKERS = ("runtime error:", "AddressSanitizer", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer")
"""Text in the standard error of a sanitized run that means a sanitizer reported."""


class HostError(Exception):
    """The project did not build or its binary did not run to the end (crash, bad
    exit status, timeout); the message holds the tail of the compiler's or the
    program's output."""


@dataclass(frozen=True)
class HostRun:
    """What one run of the host test printed and wrote."""

    stdout: str
    stderr: str
    returncode: int
    losses: list[float]
    """The loss of each step (`step N loss X` lines; empty for an inference test)."""
    params: dict[str, np.ndarray]
    """Every dumped parameter (flat, as written): by name for the names given to `run`,
    by file stem for the others."""
    outputs: list[np.ndarray]
    """The outputs of the last step of an inference test (flat), in result order."""


def host_compiler() -> str:
    """The C compiler of host builds: `$CC`, else `gcc`, else `cc`."""
    for candidate in (os.environ.get("CC"), "gcc", "cc"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate
    raise HostError("no host C compiler: install gcc (or set CC)")


def default_cache() -> Path:
    """The cache of runtime objects `build` uses when asked: `$XDG_CACHE_HOME/edge-opt/
    c-runtime` (default `~/.cache/edge-opt/c-runtime`). Objects are stored under a hash
    of everything they are compiled from, so a stale one is never used."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "edge-opt" / "c-runtime"


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


_OBJECT_SUFFIX = {"network_test": ".host.o", "network_test_asan": ".asan.o"}
"""The runtime objects the Makefile compiles for each binary."""


def build(directory: str | os.PathLike[str], binary: str = "network_test",
          cache: str | os.PathLike[str] | None = None) -> Path:
    """Builds `binary` (one of `BINARIES`) of the project in `directory` with `make`
    and the host compiler; returns its path.

    With a `cache` directory, the runtime's object files are reused across projects:
    each is stored under a hash of its source, the runtime's headers, the Makefile and
    the compiler, and copied into a project whose source hashes the same before `make`
    runs (which then compiles only what is missing: the network, and a runtime file
    that was changed, such as one with a planted bug)."""
    if binary not in BINARIES:
        raise ValueError(f"binary must be one of {', '.join(BINARIES)}, got {binary!r}")
    directory = Path(directory)
    compiler = host_compiler()
    objects = _object_keys(directory, compiler, binary) if cache is not None else {}
    for target, key in objects.items():
        stored = Path(cache) / key  # type: ignore[arg-type]
        if stored.is_file():  # copied now: newer than the sources, so `make` keeps it
            shutil.copyfile(stored, target)
    jobs = f"-j{min(os.cpu_count() or 1, 8)}"
    result = subprocess.run(
        ["make", "-C", str(directory), jobs, f"CC={compiler}", binary],
        check=False, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise HostError(f"make {binary} failed (exit status {result.returncode}):\n"
                        + _tail(result.stdout + result.stderr))
    for target, key in objects.items():
        _store(target, Path(cache) / key)  # type: ignore[arg-type]
    return directory / binary


def _object_keys(directory: Path, compiler: str, binary: str) -> dict[Path, str]:
    """The cache key of every runtime object `binary` links, by the object's path."""
    runtime = directory / "runtime"
    shared = hashlib.sha256(f"{compiler}\0{binary}\0".encode())
    shared.update((directory / "Makefile").read_bytes())
    for header in sorted(runtime.glob("*.h")):
        shared.update(f"\0{header.name}\0".encode() + header.read_bytes())
    keys = {}
    for source in sorted(runtime.glob("*.c")):
        digest = shared.copy()
        digest.update(f"\0{source.name}\0".encode() + source.read_bytes())
        keys[source.with_suffix(_OBJECT_SUFFIX[binary])] = digest.hexdigest()[:40] + ".o"
    return keys


def _store(built: Path, stored: Path) -> None:
    """Puts `built` into the cache as `stored`, whole (through a temporary file: another
    process may be storing the same object)."""
    if stored.is_file() or not built.is_file():
        return
    stored.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".object.", dir=stored.parent)
    os.close(handle)
    shutil.copyfile(built, temporary)
    os.replace(temporary, stored)


def losses_of(stdout: str) -> list[float]:
    """The losses a training test printed, one per step."""
    return [float(line.split()[3]) for line in stdout.splitlines()
            if line.startswith("step ")]


def run(directory: str | os.PathLike[str], steps: int, threads: int | None = None,
        binary: str = "network_test", names: Sequence[str] = (),
        dump_outputs: bool = False, dump: str | os.PathLike[str] | None = None,
        timeout: float = 600) -> HostRun:
    """Runs the built `binary` for `steps` steps with `threads` threads (default: the
    SoC's cores) and reads back the parameters `names` and, with `dump_outputs` (an
    inference test only), the outputs. They are written to `dump` (kept; the outputs
    in `dump/outputs`) or to a temporary directory. Exit status 0 (every reference
    matched) and 1 (a mismatch against the embedded reference) are runs; anything else
    (bad data, a crash, a sanitizer's abort, `timeout` seconds) raises HostError."""
    directory = Path(directory)
    with tempfile.TemporaryDirectory(prefix="edge-opt-dump-") as scratch:
        params_dump = Path(scratch) if dump is None else Path(dump)
        outputs_dump = params_dump / "outputs"
        command = [str(directory / binary), "--steps", str(steps), "--dump-params",
                   str(params_dump)]
        if dump_outputs:
            shutil.rmtree(outputs_dump, ignore_errors=True)  # no outputs of an earlier run
            command += ["--dump-outputs", str(outputs_dump)]
        if threads is not None:
            command += ["--threads", str(threads)]
        try:
            result = subprocess.run(command, check=False, capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HostError(f"{binary} did not finish within {timeout:g} s") from None
        if result.returncode not in (0, 1):
            raise HostError(f"{binary} exited with status {result.returncode}:\n"
                            + _tail(result.stdout + result.stderr))
        files = dump_file_names(names)
        named = set(files.values())
        params = {path.stem: np.load(path) for path in sorted(params_dump.glob("*.npy"))
                  if path.name not in named}
        params |= {name: np.load(params_dump / file) for name, file in files.items()
                   if (params_dump / file).is_file()}
        outputs = []
        while (path := outputs_dump / f"output_{len(outputs)}.npy").is_file():
            outputs.append(np.load(path))
    return HostRun(result.stdout, result.stderr, result.returncode,
                   losses_of(result.stdout), params, outputs)
