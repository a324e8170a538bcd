"""What the driver writes and reads: outputs never overwrite inputs or leave a half
written file, a model's sidecar `.npz` always belongs to it, and bad input files
(empty, not an archive, labels outside the classes) are one clean error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_opt.ir import model_io
from edge_opt.tools.driver import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_cnn.mlir"
EXAMPLE_INPUT = ROOT / "examples" / "tiny_cnn_input.npz"

INLINE_MODEL = """\
nn.param trainable @w : tensor<2x2xf32> = dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
func.func @forward(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
  %w = nn.load @w : tensor<2x2xf32>
  %y = nn.matmul %x, %w : (tensor<1x2xf32>, tensor<2x2xf32>) -> tensor<1x2xf32>
  func.return %y : tensor<1x2xf32>
}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for source in (EXAMPLE, EXAMPLE.with_suffix(".npz"), EXAMPLE_INPUT):
        shutil.copy(source, tmp_path / source.name)
    return tmp_path


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("edge-opt: error:") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "output, message",
    [
        ("tiny_cnn.npz", "a model is written as .mlir text with its parameters in the .npz"),
        ("tiny_cnn_input.npz", "a model is written as .mlir text"),
        (".", "is a directory; give a file name"),
        ("/", "is a directory; give a file name"),
        ("sub/", "is a directory; give a file name"),
        ("missing/out.mlir", "directory missing does not exist"),
        ("tiny_cnn.txt", "would overwrite the input"),
        ("/proc/out.mlir", "cannot write"),
    ],
)
def test_bad_output_is_refused_and_inputs_are_untouched(
    workdir: Path, capsys, monkeypatch, output: str, message: str
):
    (workdir / "sub").mkdir()
    monkeypatch.chdir(workdir)
    before = _snapshot(workdir)
    assert main(["tiny_cnn.mlir", "-p", "cse", "-o", output]) == 1
    assert message in _error(capsys)
    assert _snapshot(workdir) == before  # nothing written, nothing half-written
    assert sorted(p.name for p in (workdir / "sub").iterdir()) == []


def test_output_onto_an_existing_directory_leaves_no_stray_sidecar(workdir: Path, capsys):
    (workdir / "out").mkdir()
    assert main([str(workdir / "tiny_cnn.mlir"), "-p", "cse", "-o", str(workdir / "out")]) == 1
    assert "is a directory" in _error(capsys)
    assert not (workdir / "out.npz").exists()


def test_rewriting_the_input_in_place_is_allowed(workdir: Path):
    model = workdir / "tiny_cnn.mlir"
    assert main([str(model), "--pipeline", "infer", "-o", str(model)]) == 0
    module = model_io.load_model(model)
    assert module is not None


def test_stale_sidecar_is_removed_when_all_values_are_inline(workdir: Path):
    """An earlier `x.mlir` kept its weights in `x.npz`; a new `x.mlir` whose values are
    all inline must not be read with the old weights."""
    out = workdir / "x.mlir"
    assert main([str(workdir / "tiny_cnn.mlir"), "-o", str(out)]) == 0
    assert out.with_suffix(".npz").exists()
    small = workdir / "small.mlir"
    small.write_text(INLINE_MODEL)
    assert main([str(small), "-o", str(out)]) == 0
    assert not out.with_suffix(".npz").exists()
    assert "@w" in out.read_text()


def test_a_foreign_npz_beside_the_output_is_not_touched(workdir: Path, capsys):
    small = workdir / "small.mlir"
    small.write_text(INLINE_MODEL)
    data = workdir / "tiny_cnn_input.npz"
    before = data.read_bytes()
    assert main([str(small), "-o", str(workdir / "tiny_cnn_input.mlir")]) == 1
    assert "is not a parameter file of this model" in _error(capsys)
    assert data.read_bytes() == before
    assert not (workdir / "tiny_cnn_input.mlir").exists()


def test_a_stale_sidecar_is_detected_when_read(workdir: Path, capsys):
    model = workdir / "m.mlir"
    model.write_text(INLINE_MODEL)
    model_io.write_npz(workdir / "m.npz", {"w": np.zeros((2, 2), np.float32)})
    assert main([str(model)]) == 1
    assert "not this model's sidecar" in _error(capsys)
    assert main(["run", str(model)]) == 1
    assert "not this model's sidecar" in _error(capsys)
    # An explicit --params overrides inline values on purpose.
    assert main([str(model), "--params", str(workdir / "m.npz")]) == 0


def test_sidecar_of_another_model_is_detected(workdir: Path, capsys):
    model = workdir / "m.mlir"
    model.write_text(INLINE_MODEL)
    shutil.copy(workdir / "tiny_cnn.npz", workdir / "m.npz")
    assert main([str(model)]) == 1
    assert "does not declare" in _error(capsys)


def test_run_outputs_never_overwrite_inputs(workdir: Path, capsys):
    before = _snapshot(workdir)
    model = str(workdir / "tiny_cnn.mlir")
    data = str(workdir / "tiny_cnn_input.npz")
    for option, target in [("-o", "tiny_cnn.npz"), ("-o", "tiny_cnn_input.npz"),
                           ("--save-params", "tiny_cnn.mlir"), ("-o", "out.mlir")]:
        argv = ["run", model, "--input", data, option, str(workdir / target)]
        assert main(argv) == 1
        _error(capsys)
    assert _snapshot(workdir) == before


def test_import_output_is_checked_before_importing(workdir: Path, capsys):
    onnx_file = workdir / "m.onnx"
    onnx_file.write_bytes(b"whatever")
    assert main(["import", str(onnx_file), "-o", str(onnx_file)]) == 1
    _error(capsys)
    assert onnx_file.read_bytes() == b"whatever"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"not a zip file", "not an .npz archive (not a zip file"),
    ],
)
def test_unreadable_npz_is_a_clean_error(workdir: Path, capsys, content, message):
    bad = workdir / "bad.npz"
    bad.write_bytes(content)
    assert main(["run", str(workdir / "tiny_cnn.mlir"), "--input", str(bad)]) == 1
    assert message in _error(capsys)
    shutil.copy(bad, workdir / "tiny_cnn.npz")  # the model's own sidecar
    assert main([str(workdir / "tiny_cnn.mlir")]) == 1
    assert message in _error(capsys)


def test_npz_of_objects_does_not_suggest_pickle(workdir: Path, capsys):
    bad = workdir / "objects.npz"
    np.savez(bad, image=np.array([{"a": 1}], dtype=object))
    assert main(["run", str(workdir / "tiny_cnn.mlir"), "--input", str(bad)]) == 1
    err = _error(capsys)
    assert "holds Python objects" in err and "allow_pickle" not in err


@pytest.mark.parametrize("label", [-1, 10, 1000])
def test_labels_outside_the_classes_are_a_clean_error(workdir: Path, capsys, label: int):
    batch = model_io.read_npz(workdir / "tiny_cnn_input.npz")
    batch["labels"] = batch["labels"].copy()
    batch["labels"][2] = label
    bad = workdir / "bad_labels.npz"
    model_io.write_npz(bad, batch)
    model = str(workdir / "tiny_cnn.mlir")
    run = ["run", model, "--pipeline", "train-full", "--function", "train_step",
           "--input", str(bad)]
    assert main(run) == 1
    expected = f"labels[2] = {label} (an input of @train_step) is not a class label: " \
               "labels must be in [0, 10)"
    assert expected in _error(capsys)
    emit = [model, "--pipeline", "train-full", "--emit", "c", "--input", str(bad),
            "-o", str(workdir / "project")]
    assert main(emit) == 1
    assert expected in _error(capsys)
    assert not (workdir / "project").exists()


def test_the_interpreter_checks_labels_it_computes(capsys):
    """Labels that are not a function input (e.g. computed) are checked by the
    cross-entropy itself."""
    from edge_opt.support import train_numerics
    from edge_opt.support.errors import InputError

    with pytest.raises(InputError, match=r"labels\[1\] = -3 is not a class label"):
        train_numerics.cross_entropy(np.zeros((2, 4), np.float32), np.array([0, -3]), "mean")
    with pytest.raises(InputError, match=r"labels\[0\] = 4 .*\(2 labels are out of range\)"):
        train_numerics.cross_entropy_grad(np.zeros((2, 4)), np.array([4, 7]), "sum")


def test_unwritable_directory_is_a_clean_error(workdir: Path, capsys):
    if os.geteuid() == 0:
        target = "/proc/edge-opt-test/out.mlir"  # root writes anywhere else
    else:
        locked = workdir / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "out.mlir")
    assert main([str(workdir / "tiny_cnn.mlir"), "-o", target]) == 1
    _error(capsys)
