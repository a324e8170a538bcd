"""The parameters' initial values travel as a binary blob (params.bin, linked in by
params.S), not as C text: network.c stays small and readable, the blob holds exactly
the model's .npz values, and a built program can start from another blob of the same
network (a file, or flash with -DEDGE_PARAMS_EXTERNAL) and refuses one of another."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from c_project import build, losses_of

from edge_opt.backends.c.params_blob import read_params_blob
from edge_opt.ir import model_io
from edge_opt.tools.driver import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_cnn.mlir"


def _project(tmp_path: Path, name: str, model: Path = EXAMPLE,
             pipeline: str = "train-full") -> Path:
    project = tmp_path / name
    assert main([str(model), "--pipeline", pipeline, "--emit", "c", "-o", str(project)]) == 0
    return project


def _run(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300,
                          check=False)


def test_the_blob_holds_the_models_values_and_network_c_none(tmp_path: Path):
    project = _project(tmp_path, "p", pipeline="infer")
    npz = np.load(ROOT / "examples" / "tiny_cnn.npz")
    module = model_io.load_model(str(EXAMPLE))
    values = read_params_blob(module, (project / "params.bin").read_bytes())
    assert sorted(values) == sorted(npz.files)
    for name in npz.files:
        assert values[name].tobytes() == npz[name].astype("<f4").tobytes(), name
    network = (project / "network.c").read_text()
    weight = float(npz["fc_weight"].flat[0])
    assert f"{weight:.6g}"[:7] not in network
    assert '.incbin "params.bin"' in (project / "params.S").read_text()


def test_a_big_layer_does_not_grow_network_c(tmp_path: Path):
    model = tmp_path / "big.mlir"
    model.write_text("""builtin.module {
  nn.param trainable @w : tensor<512x512xf32>
  func.func @forward(%x: tensor<2x512xf32>) -> tensor<2x512xf32> {
    %w = nn.load @w : tensor<512x512xf32>
    %y = nn.linear %x, %w : (tensor<2x512xf32>, tensor<512x512xf32>) -> tensor<2x512xf32>
    func.return %y : tensor<2x512xf32>
  }
}
""")
    rng = np.random.default_rng(0)
    model_io.write_npz(tmp_path / "big.npz",
                       {"w": rng.standard_normal((512, 512)).astype(np.float32)})
    project = _project(tmp_path, "p", model, "infer")
    assert (project / "params.bin").stat().st_size == 32 + 512 * 512 * 4
    assert (project / "network.c").stat().st_size < 16_000
    result = _run(build(project))
    assert result.returncode == 0 and result.stdout.endswith("OK\n"), result.stdout


def test_a_program_starts_from_another_blob_of_its_network(tmp_path: Path):
    """Project B is the same network with other weights: program A run on B's blob
    prints B's losses (B's references are the interpreter's, computed for B)."""
    original = _project(tmp_path, "a")
    values = model_io.read_npz(str(ROOT / "examples" / "tiny_cnn.npz"))
    rng = np.random.default_rng(1)
    model = tmp_path / "other.mlir"
    model.write_text(EXAMPLE.read_text())
    model_io.write_npz(tmp_path / "other.npz", {
        k: (v + 0.1 * rng.standard_normal(v.shape)).astype(v.dtype) if "var" not in k else v
        for k, v in values.items()})
    other = _project(tmp_path, "b", model)
    run_b = _run(build(other))
    assert run_b.returncode == 0, run_b.stdout
    run_a = _run(build(original), "--params", str(other / "params.bin"))
    assert run_a.returncode == 0, run_a.stderr
    assert losses_of(run_a.stdout) == losses_of(run_b.stdout)
    assert losses_of(run_a.stdout) != losses_of(_run(original / "network_test").stdout)
    # Built without the linked-in blob (as on a device that reads it from flash).
    sources = ["network.c", "test_data.c", "main.c",
               *sorted(str(p.relative_to(original)) for p in (original / "runtime").glob("*.c"))]
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-DEDGE_PARAMS_EXTERNAL", "-I.",
                    "-Iruntime", *sources, "-o", "external", "-lm", "-pthread"],
                   cwd=original, check=True, capture_output=True)
    external = _run(original / "external", "--params", str(other / "params.bin"))
    assert losses_of(external.stdout) == losses_of(run_b.stdout)


def test_a_blob_of_another_network_is_refused(tmp_path: Path):
    binary = build(_project(tmp_path, "a"))
    # momentum buffers are parameters too: another layout
    momentum = _project(tmp_path, "m", pipeline="train-full{momentum=0.9}")
    truncated = tmp_path / "short.bin"
    truncated.write_bytes((binary.parent / "params.bin").read_bytes()[:100])
    for blob, message in [(momentum / "params.bin", "a parameter blob of another network"),
                          (truncated, "a parameter blob of another network"),
                          (EXAMPLE, "not an edge-opt parameter blob"),
                          (tmp_path / "missing.bin", "cannot read")]:
        result = _run(binary, "--params", str(blob))
        assert result.returncode == 2, (blob, result.stdout)
        assert f"--params {blob}: {message}" in result.stderr
