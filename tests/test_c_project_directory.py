"""`--emit c -o DIR` never deletes or overwrites what edge-opt did not write: the cases of
issue 10 (items 1 and 3) run as a user would, through the installed `edge-opt` command,
and each checks that every file the user had is still there, byte for byte."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples"


def _edge_opt(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("edge-opt", path=str(Path(sys.executable).parent))
    assert exe is not None
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600, check=False)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def user(tmp_path: Path) -> Path:
    """A user's working directory: the model and its parameters in `m/`."""
    (tmp_path / "m").mkdir()
    for name in ("tiny_cnn.mlir", "tiny_cnn.npz"):
        shutil.copy(EXAMPLE / name, tmp_path / "m" / name)
    return tmp_path


def _refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("edge-opt: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


@pytest.mark.parametrize("force", [False, True])
def test_emit_c_into_the_models_own_directory_is_refused(user: Path, force: bool):
    """The reported data loss: `-o m` with the model in `m` deleted the model. Refused even
    with --force, which never extends to an input."""
    before = _snapshot(user)
    result = _edge_opt("m/tiny_cnn.mlir", "--pipeline", "train-full", "--emit", "c",
                       "-o", "m", *(["--force"] if force else []), cwd=user)
    _refused(result, "m holds the input m/tiny_cnn.mlir", "another directory")
    assert _snapshot(user) == before


def test_a_directory_edge_opt_did_not_write_is_refused_then_forced(user: Path):
    (user / "out").mkdir()
    (user / "out" / "notes.txt").write_text("mine")
    args = ("m/tiny_cnn.mlir", "--pipeline", "train-full", "--emit", "c", "-o", "out")
    _refused(_edge_opt(*args, cwd=user), "out is not empty and is not an edge-opt project",
             "notes.txt", "--force")
    assert (user / "out" / "notes.txt").read_text() == "mine"
    assert _edge_opt(*args, "--force", cwd=user).returncode == 0
    assert not (user / "out" / "notes.txt").exists()
    assert (user / "out" / "network.c").is_file()


def test_an_earlier_project_is_replaced_but_not_a_users_file_in_it(user: Path):
    args = ("m/tiny_cnn.mlir", "--pipeline", "train-full", "--emit", "c", "-o", "out")
    assert _edge_opt(*args, cwd=user).returncode == 0
    listed = (user / "out" / ".edge-opt-project").read_text().splitlines()
    assert {"network.c", "Makefile", "runtime/edge_runtime.h"} <= set(listed)
    # What the project's own Makefile builds is not the user's: replaced silently.
    (user / "out" / "network_test").write_bytes(b"\x7fELF")
    (user / "out" / "network.rv32.o").write_bytes(b"o")
    (user / "out" / "network.c").write_text("stale")
    assert _edge_opt(*args, "--steps", "2", cwd=user).returncode == 0
    assert (user / "out" / "network.c").read_text() != "stale"
    assert "EDGE_TEST_STEPS 2" in (user / "out" / "test_data.h").read_text()
    # A file the user put there is not.
    (user / "out" / "runtime" / "my_kernel.c").write_text("int x;")
    _refused(_edge_opt(*args, cwd=user), "files edge-opt did not write",
             "runtime/my_kernel.c")
    assert (user / "out" / "runtime" / "my_kernel.c").read_text() == "int x;"


@pytest.mark.parametrize("output", ["m/tiny_cnn.mlir", "m/tiny_cnn.npz", "/"])
def test_emit_c_onto_a_file_or_the_root_is_refused(user: Path, output: str):
    before = _snapshot(user)
    result = _edge_opt("m/tiny_cnn.mlir", "--pipeline", "train-full", "--emit", "c",
                       "-o", output, "--force", cwd=user)
    _refused(result, output)
    assert _snapshot(user) == before


def test_the_input_batch_is_an_input_too(user: Path):
    shutil.copy(EXAMPLE / "tiny_cnn_input.npz", user / "m" / "batch.npz")
    (user / "data").mkdir()
    shutil.move(user / "m" / "batch.npz", user / "data" / "batch.npz")
    before = _snapshot(user)
    result = _edge_opt("m/tiny_cnn.mlir", "--pipeline", "train-full", "--emit", "c",
                       "-o", "data", "--input", "data/batch.npz", "--force", cwd=user)
    _refused(result, "data holds the input data/batch.npz")
    assert _snapshot(user) == before
