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


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


_OBJECT_SUFFIX = {"network_test": ".host.o", "network_test_asan": ".asan.o"}
"""The runtime objects the Makefile compiles for each binary."""


def build(directory: str | os.PathLike[str], binary: str = "network_test",
          cache: str | os.PathLike[str] | None = None) -> Path:
    """Builds `binary` (one of `BINARIES`) of the project in `directory` with `make`
    and the host compiler; returns its path.

    With a `cache` directory, the runtime's objects are reused across projects: they
    are stored under a hash of the runtime's sources, the Makefile and the compiler,
    and copied into a project whose runtime hashes the same before `make` runs (which
    then compiles only the network). A project whose runtime was changed (a planted
    bug) hashes differently and compiles its own."""
    if binary not in BINARIES:
        raise ValueError(f"binary must be one of {', '.join(BINARIES)}, got {binary!r}")
    directory = Path(directory)
    compiler = host_compiler()
    stored = None
    if cache is not None:
        stored = Path(cache) / _runtime_key(directory, compiler, binary)
        _restore_objects(stored, directory / "runtime")
    jobs = f"-j{min(os.cpu_count() or 1, 8)}"
    result = subprocess.run(
        ["make", "-C", str(directory), jobs, f"CC={compiler}", binary],
        check=False, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise HostError(f"make {binary} failed (exit status {result.returncode}):\n"
                        + _tail(result.stdout + result.stderr))
    if stored is not None:
        _store_objects(directory / "runtime", _OBJECT_SUFFIX[binary], stored)
    return directory / binary


def _runtime_key(directory: Path, compiler: str, binary: str) -> str:
    digest = hashlib.sha256(f"{compiler}\0{binary}\0".encode())
    digest.update((directory / "Makefile").read_bytes())
    for path in sorted((directory / "runtime").glob("*.[ch]")):
        digest.update(f"\0{path.name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def _restore_objects(stored: Path, runtime: Path) -> None:
    """Copies the cached objects into `runtime`, newer than its sources (so `make`
    takes them as built)."""
    if not stored.is_dir():
        return
    for path in sorted(stored.glob("*.o")):
        shutil.copyfile(path, runtime / path.name)


def _store_objects(runtime: Path, suffix: str, stored: Path) -> None:
    """Puts the objects of `runtime` into the cache at `stored`, whole or not at all
    (another process may be storing the same key)."""
    if stored.is_dir():
        return
    stored.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".objects.", dir=stored.parent))
    for path in sorted(runtime.glob(f"*{suffix}")):
        shutil.copyfile(path, staging / path.name)
    try:
        staging.rename(stored)
    except OSError:  # stored meanwhile by another process
        shutil.rmtree(staging, ignore_errors=True)


def losses_of(stdout: str) -> list[float]:
    """The losses a training test printed, one per step."""
    return [float(line.split()[3]) for line in stdout.splitlines()
            if line.startswith("step ")]


def run(directory: str | os.PathLike[str], steps: int, threads: int | None = None,
        binary: str = "network_test", names: Sequence[str] = (),
        dump_outputs: bool = False, timeout: float = 600) -> HostRun:
    """Runs the built `binary` for `steps` steps with `threads` threads (default: the
    SoC's cores) and reads back the parameters `names` and, with `dump_outputs` (an
    inference test only), the outputs. Exit status 0 (every reference matched) and 1 (a mismatch against the
    embedded reference) are runs; anything else (bad data, a crash, a sanitizer's abort,
    `timeout` seconds) raises HostError."""
    directory = Path(directory)
    with tempfile.TemporaryDirectory(prefix="edge-opt-dump-") as scratch:
        dump, outputs_dump = Path(scratch) / "params", Path(scratch) / "outputs"
        command = [str(directory / binary), "--steps", str(steps), "--dump-params",
                   str(dump)]
        if dump_outputs:
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
        params = {path.stem: np.load(path) for path in sorted(dump.glob("*.npy"))
                  if path.name not in named}
        params |= {name: np.load(dump / file) for name, file in files.items()
                   if (dump / file).is_file()}
        outputs = []
        while (path := outputs_dump / f"output_{len(outputs)}.npy").is_file():
            outputs.append(np.load(path))
    return HostRun(result.stdout, result.stderr, result.returncode,
                   losses_of(result.stdout), params, outputs)
