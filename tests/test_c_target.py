"""The C backend as a pipeline stage and an output target (`-t c`), the SoC's data in
the C, flags that cannot take effect, and the optimizer's scalars at run time."""

from __future__ import annotations

import filecmp
import re
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest
from c_project import build, losses_of

from edge_opt.ir import model_io
from edge_opt.ir.context import make_context
from edge_opt.ir.session import Session
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.tools.driver import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "tiny_cnn.mlir")
EXAMPLE_INPUT = str(ROOT / "examples" / "tiny_cnn_input.npz")


def _same_tree(a: Path, b: Path) -> bool:
    comparison = filecmp.dircmp(a, b)
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, comparison.common_files, shallow=False)
    return not mismatch and not errors and all(
        _same_tree(a / d, b / d) for d in comparison.common_dirs
    )


def test_t_c_and_emit_c_write_the_same_project(tmp_path: Path):
    assert main([EXAMPLE, "--pipeline", "train-full", "--emit", "c", "-o",
                 str(tmp_path / "emit"), "--steps", "2", "--soc", "gap9"]) == 0
    assert main([EXAMPLE, "--pipeline", "train-full", "-t",
                 f'c{{dir="{tmp_path / "target"}" steps=2}}', "--soc", "gap9"]) == 0
    assert _same_tree(tmp_path / "emit", tmp_path / "target")


@pytest.mark.parametrize("soc", ["host", "gap9", "siracusa"])
def test_soc_data_reaches_the_c(tmp_path: Path, soc: str):
    """The macros of network.h are the SoC's file (read here with tomllib, not through
    the compiler's own loader)."""
    assert main([EXAMPLE, "--pipeline", "train-full", "--emit", "c", "-o",
                 str(tmp_path / soc), "--soc", soc]) == 0
    data = tomllib.loads((ROOT / "backends" / "targets" / f"{soc}.toml").read_text())
    header = (tmp_path / soc / "network.h").read_text()
    macros = dict(re.findall(r"#define (EDGE_SOC\w*) (\S+)", header))
    assert macros["EDGE_SOC"] == f'"{soc}"'
    assert int(macros["EDGE_SOC_CORES"]) == data["cores"]
    for level in ("L1", "L2", "L3"):
        assert int(macros[f"EDGE_SOC_{level}_BYTES"]) == data["memory"].get(level, 0)
    # The PULP build's team size comes from the SoC, not from a Makefile constant.
    assert "NUM_CORES=" not in (tmp_path / soc / "Makefile").read_text()
    assert "#define NUM_CORES EDGE_SOC_CORES" in header


def test_a_planned_soc_that_contradicts_soc_is_an_error(tmp_path: Path, capsys):
    """The issue's example: the pipeline plans for host with L3 weights; --soc siracusa
    (which has no L3) cannot take effect."""
    out = tmp_path / "project"
    code = main([EXAMPLE, "-p", "train-full,bufferize{weights=L3},plan-memory{soc=host}",
                 "--emit", "c", "--soc", "siracusa", "-o", str(out)])
    assert code == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "already planned for SoC host" in err and "--soc siracusa cannot take effect" in err
    # --weights against the parameters' placed level: the same.
    assert main([EXAMPLE, "-p", "train-full,bufferize{weights=L3},plan-memory",
                 "--emit", "c", "--weights", "L2", "-o", str(out)]) == 1
    assert "--weights L2 cannot take effect" in capsys.readouterr().err
    # Repeating the plan is fine.
    assert main([EXAMPLE, "-p", "train-full,bufferize{weights=L3},plan-memory{soc=gap9}",
                 "--emit", "c", "--soc", "gap9", "--weights", "L3", "-o", str(out)]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "3"], "--steps only takes effect with -t c"),
        (["--input", EXAMPLE_INPUT], "--input only takes effect with -t c"),
        (["--soc", "gap9"], "--soc only takes effect with -t c (--emit c) or --report"),
        (["--weights", "L3", "--soc", "gap9"], "--soc and --weights only take effect"),
        (["--json"], "--json only takes effect with --report"),
        (["-t", "c{stepz=1}"], 'Provided arguments ["stepz"] not found'),
        (["-t", "c"], "writes a project directory: give it with -o DIR"),
        (["-t", "c{steps=0}", "-o", "x"], "needs at least one step, got 0"),
        (["-t", "c{steps=2}", "--steps", "3", "-o", "x"], "--steps 3 contradicts -t c"),
        (["--emit", "c", "--report", "-o", "x"], "ask for two outputs"),
    ],
)
def test_flags_that_cannot_take_effect_are_errors(args, message, capsys, tmp_path: Path,
                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([EXAMPLE, "--pipeline", "train-full", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edge-opt: error:") and message in err, err
    assert not (tmp_path / "x").exists()


def test_report_takes_soc(capsys):
    assert main(["report", EXAMPLE, "--pipeline", "train-full", "--soc", "gap9"]) == 0
    assert "memory on gap9" in capsys.readouterr().out


def _losses(spec: str, batch: dict[str, np.ndarray], steps: int) -> list[float]:
    module = model_io.load_model(EXAMPLE)
    for p in expand(parse_pipeline(spec)):
        p.apply(make_context(), module)
    session = Session(module)
    return [float(session.run("train_step", batch)[0]) for _ in range(steps)]


@pytest.mark.parametrize("optimizer", ["momentum=0.9", "optimizer=adam", "weight_decay=0.01"])
def test_learning_rate_set_at_run_time(tmp_path: Path, optimizer: str):
    """A project compiled with lr=0.05 and run with `--lr 0.01` (edge_set_lr) trains as
    the interpreter does on the model compiled with lr=0.01."""
    project = tmp_path / "project"
    assert main([EXAMPLE, "--pipeline", f"train-full{{lr=0.05 {optimizer}}}", "--emit",
                 "c", "-o", str(project), "--input", EXAMPLE_INPUT, "--steps", "4"]) == 0
    binary = build(project)
    batch = dict(np.load(EXAMPLE_INPUT))
    compiled = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0 and "OK" in compiled.stdout, compiled.stdout
    changed = subprocess.run([str(binary), "--lr", "0.01"], capture_output=True, text=True,
                             timeout=300)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    expected = _losses(f"train-full{{lr=0.01 {optimizer}}}", batch, 4)
    np.testing.assert_allclose(losses_of(changed.stdout), expected, rtol=1e-4)
    assert not np.allclose(losses_of(compiled.stdout)[1:], expected[1:], rtol=1e-4)


HYPERPARAMETER_CHECK = r"""
#include <math.h>
#include <stdio.h>
#include "network.h"
int main(void) {
  init();
  edge_hyperparameters_t start = edge_get_hyperparameters(), v = start;
  int failures = 0;
  failures += edge_set_lr(0.0f) != -1;
  failures += edge_set_lr(-1.0f) != -1;
  failures += edge_set_lr(INFINITY) != -1;
  failures += edge_set_lr(NAN) != -1;
  v.weight_decay = -0.5f; failures += edge_set_hyperparameters(&v) != -1;
  v = start; v.momentum = 1.0f; failures += edge_set_hyperparameters(&v) != -1;
  v = start; v.momentum = 0.5f;
  failures += edge_set_hyperparameters(&v) != EXPECT_MOMENTUM;
  v = edge_get_hyperparameters();
  failures += v.lr != start.lr || v.weight_decay != start.weight_decay;
  failures += edge_set_lr(0.125f) != 0 || edge_get_hyperparameters().lr != 0.125f;
  printf("%d %g\n", failures, (double)start.lr);
  return failures != 0;
}
"""


@pytest.mark.parametrize(("pipeline", "momentum_ok"),
                         [("train-full{lr=0.25}", False),
                          ("train-full{lr=0.25 momentum=0.9}", True)])
def test_hyperparameter_setters_refuse_what_cannot_take_effect(tmp_path: Path, pipeline,
                                                                momentum_ok):
    project = tmp_path / "project"
    assert main([EXAMPLE, "--pipeline", pipeline, "--emit", "c", "-o", str(project)]) == 0
    (project / "check.c").write_text(HYPERPARAMETER_CHECK)
    runtime = sorted(str(p) for p in (project / "runtime").glob("*.c"))
    binary = project / "check"
    subprocess.run(
        ["gcc", "-O1", "-Wall", "-Werror", "-std=gnu11", f"-DEXPECT_MOMENTUM={0 if momentum_ok else -1}",
         "-I", str(project), "-I", str(project / "runtime"), str(project / "check.c"),
         str(project / "network.c"), str(project / "params.S"), *runtime, "-o", str(binary),
         "-lm", "-pthread"],
        check=True, capture_output=True, cwd=project,  # params.S includes params.bin
    )
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.split() == ["0", "0.25"], result.stdout


def test_inference_projects_have_no_optimizer_state(tmp_path: Path):
    assert main([EXAMPLE, "--pipeline", "infer", "--emit", "c", "-o", str(tmp_path / "p")]) == 0
    assert "edge_set_lr" not in (tmp_path / "p" / "network.h").read_text()
    assert "--lr" not in (tmp_path / "p" / "main.c").read_text()


def test_a_bad_label_in_the_c_is_reported_with_its_position(tmp_path: Path):
    """The compiler refuses bad labels in --input; data that reaches the C some other way
    (here: the embedded batch edited after generation) is caught by the runtime, which
    records the label (edge_last_error) for the generated main.c to report."""
    project = tmp_path / "project"
    assert main([EXAMPLE, "--pipeline", "train-full", "--emit", "c", "-o", str(project)]) == 0
    data = (project / "test_data.c").read_text()
    labels = re.search(r"(const int32_t edge_test_labels\[\d+\] = \{\s*)(-?\d+), (-?\d+)", data)
    assert labels is not None
    (project / "test_data.c").write_text(
        data.replace(labels.group(0), f"{labels.group(1)}{labels.group(2)}, -4", 1))
    binary = build(project)
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "step 1: labels[1] = -4 is not a class label: labels must be in [0, 10)" \
        in result.stderr
    assert "step 1 loss" not in result.stdout


def test_the_host_test_creates_its_dump_directory(tmp_path: Path):
    project = tmp_path / "project"
    assert main([EXAMPLE, "--pipeline", "train-full", "--emit", "c", "-o", str(project),
                 "--steps", "1"]) == 0
    binary = build(project)
    fresh = tmp_path / "dump"
    result = subprocess.run([str(binary), "--steps", "1", "--dump-params", str(fresh)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    values = model_io.read_npz(str(ROOT / "examples" / "tiny_cnn.npz"))
    assert {p.stem for p in fresh.glob("*.npy")} >= set(values)
    missing_parent = tmp_path / "no" / "such"
    result = subprocess.run([str(binary), "--steps", "1", "--dump-params", str(missing_parent)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"--dump-params {missing_parent}: cannot create the directory (No such file" \
        in result.stderr


CLOSE_TO_CHECK = r"""
#include <math.h>
#include <stdio.h>
#define EDGE_TEST_TOLERANCE 1e-4f
CLOSE_TO
int main(void) {
  float inf = INFINITY, nan = NAN;
  int cases[] = {
    close_to(inf, inf), close_to(-inf, -inf), close_to(nan, nan),  /* the same: match */
    close_to(inf, -inf), close_to(1.0f, inf), close_to(inf, 1.0f), /* differ */
    close_to(nan, 1.0f), close_to(1.0f, nan), close_to(nan, inf),
    close_to(1.00001f, 1.0f), close_to(1.001f, 1.0f),               /* tolerance */
  };
  for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) printf("%d", cases[i]);
  return 0;
}
"""


def test_close_to_matches_the_same_infinity_or_nan(tmp_path: Path):
    """The generated host test's comparison, compiled on its own."""
    assert main([EXAMPLE, "--pipeline", "infer", "--emit", "c", "-o", str(tmp_path / "p")]) == 0
    source = (tmp_path / "p" / "main.c").read_text()
    function = re.search(r"static int close_to\(.*?\n}\n", source, re.DOTALL)
    assert function is not None
    (tmp_path / "check.c").write_text(CLOSE_TO_CHECK.replace("CLOSE_TO", function.group(0)))
    subprocess.run(["gcc", "-O1", "-Wall", "-Werror", str(tmp_path / "check.c"), "-o",
                    str(tmp_path / "check"), "-lm"], check=True, capture_output=True)
    result = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True)
    assert result.stdout == "11100000010"


RANK0_FORWARD = """builtin.module {
  nn.param trainable @w : tensor<3xf32>
  func.func @forward(%x: tensor<2x3xf32>) -> tensor<f32> {
    %w = nn.load @w : tensor<3xf32>
    %y = nn.mul %x, %w : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %s = nn.reduce_sum %y {axes = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<f32>
    func.return %s : tensor<f32>
  }
}
"""


def test_a_rank0_forward_result_compiles_and_matches(tmp_path: Path):
    """One rank-0 result is the C function's return value: main.c calls it so."""
    model = tmp_path / "m.mlir"
    model.write_text(RANK0_FORWARD)
    model_io.write_npz(tmp_path / "m.npz", {"w": np.array([0.5, -1.0, 2.0], np.float32)})
    assert main([str(model), "--pipeline", "infer", "--emit", "c", "-o",
                 str(tmp_path / "p")]) == 0
    binary = build(tmp_path / "p")
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 values checked" in result.stdout and result.stdout.endswith("OK\n")
