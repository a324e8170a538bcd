"""The `edge-opt` driver: exit codes, clean errors, atomic and deterministic outputs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_opt.ir import model_io
from edge_opt.ir.session import run
from edge_opt.tools.driver import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_cnn.mlir"
EXAMPLE_INPUT = ROOT / "examples" / "tiny_cnn_input.npz"


def test_optimizer_writes_mlir_and_sidecar(tmp_path: Path):
    out = tmp_path / "out.mlir"
    assert main([str(EXAMPLE), "-p", "cse", "-o", str(out)]) == 0
    assert out.exists() and out.with_suffix(".npz").exists()
    x = model_io.read_npz(EXAMPLE_INPUT)["image"]
    before = run(model_io.load_model(EXAMPLE), "forward", {"image": x})
    after = run(model_io.load_model(out), "forward", {"image": x})
    np.testing.assert_array_equal(before[0], after[0])


def test_output_is_byte_identical_across_runs(tmp_path: Path):
    outputs = []
    for i in range(2):
        out = tmp_path / f"run{i}" / "out.mlir"
        out.parent.mkdir()
        assert main([str(EXAMPLE), "--pipeline", "infer", "-o", str(out)]) == 0
        outputs.append((out.read_bytes(), out.with_suffix(".npz").read_bytes()))
    assert outputs[0] == outputs[1]


def test_invalid_input_leaves_no_output_and_keeps_old_file(tmp_path: Path, capsys):
    bad = tmp_path / "bad.mlir"
    bad.write_text(
        "func.func @f(%x: tensor<2x3xf32>, %w: tensor<4x5xf32>) -> tensor<2x4xf32> {\n"
        "  %y = nn.linear %x, %w : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x4xf32>\n"
        "  func.return %y : tensor<2x4xf32>\n}\n"
    )
    out = tmp_path / "out.mlir"
    out.write_text("previous contents\n")
    assert main([str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "bad.mlir:2:3" in err
    assert "nn.linear: input features (3) must equal weight in-features (5)" in err
    assert "Traceback" not in err
    assert out.read_text() == "previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mlir", "out.mlir"]


def test_atomic_write_removes_temporary_file_on_error(tmp_path: Path):
    target = tmp_path / "out.txt"

    def failing_write(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        model_io.atomic_write(target, failing_write)
    assert list(tmp_path.iterdir()) == []


def test_run_writes_outputs_by_name(tmp_path: Path, capsys):
    out = tmp_path / "outputs.npz"
    code = main(["run", str(EXAMPLE), "--input", str(EXAMPLE_INPUT), "-o", str(out)])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "logits: float32[4x10]" in stdout
    written = model_io.read_npz(out)
    assert list(written) == ["logits"]
    x = model_io.read_npz(EXAMPLE_INPUT)["image"]
    (expected,) = run(model_io.load_model(EXAMPLE), "forward", [x])
    np.testing.assert_array_equal(written["logits"], expected)


def test_run_rejects_wrong_input_shape(tmp_path: Path, capsys):
    wrong = tmp_path / "wrong.npz"
    model_io.write_npz(wrong, {"image": np.zeros((4, 1, 10, 12), np.float32)})
    assert main(["run", str(EXAMPLE), "--input", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert (
        "input 'image' has shape [4, 1, 10, 12], expected [4, 1, 12, 12] "
        "(tensor<4x1x12x12xf32>)" in err
    )


def test_run_rejects_sidecar_with_wrong_shapes(tmp_path: Path, capsys):
    shutil.copy(EXAMPLE, tmp_path / "m.mlir")
    values = model_io.read_npz(EXAMPLE.with_suffix(".npz"))
    values["fc_weight"] = values["fc_weight"].T.copy()
    model_io.write_npz(tmp_path / "m.npz", values)
    assert main(["run", str(tmp_path / "m.mlir"), "--input", str(EXAMPLE_INPUT)]) == 1
    err = capsys.readouterr().err
    assert "array 'fc_weight' is float32[8, 10], but @fc_weight is declared" in err


def test_corrupt_npz_is_a_clean_error(tmp_path: Path, capsys):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip file")
    assert main(["run", str(EXAMPLE), "--input", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not an .npz archive (not a zip file" in err and "Traceback" not in err


def test_console_script_exit_status():
    exe = shutil.which("edge-opt", path=str(Path(sys.executable).parent))
    assert exe is not None
    result = subprocess.run(
        [exe, str(ROOT / "no-such-model.mlir")], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.startswith("edge-opt: error:")
    assert "Traceback" not in result.stderr


def test_plain_xdsl_opt_sees_our_dialect():
    """The `xdsl.universe` entry point registers `nn` with upstream xdsl-opt."""
    exe = shutil.which("xdsl-opt", path=str(Path(sys.executable).parent))
    assert exe is not None
    result = subprocess.run([exe, str(EXAMPLE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "nn.conv2d" in result.stdout
