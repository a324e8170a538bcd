"""The generated C against the interpreter (the specification).

Each test emits a C project (`--emit c`), builds it with the host gcc (`-O2 -Wall -Wextra
-Werror`; and with AddressSanitizer + UBSan), runs its training steps and compares the
loss of every step and every parameter afterwards with the interpreter's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from c_project import build, compile_and_run, losses_of, run_project
from hypothesis import assume, given, settings
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.backends.c.compile import emit_c_project
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir import model_io
from edge_opt.ir.context import make_context
from edge_opt.ir.session import Session
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.testing import random_models
from edge_opt.tools.driver import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_cnn.mlir"
EXAMPLE_INPUT = ROOT / "examples" / "tiny_cnn_input.npz"
TOLERANCE = 1e-4


def _apply(module, spec: str):
    for p in expand(parse_pipeline(spec)):
        p.apply(make_context(), module)
        module.verify()
    return module


def _reference(module, batch: dict, steps: int) -> tuple[list[float], dict[str, np.ndarray]]:
    """Losses and parameters of the interpreter (tensor level) after `steps` steps."""
    session = Session(module)
    losses = [float(session.run("train_step", batch)[0]) for _ in range(steps)]
    return losses, {k: np.array(v) for k, v in session.params.items()}


def _assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    scale = max(float(np.max(np.abs(expected))), 1e-6) if expected.size else 1.0
    error = float(np.max(np.abs(actual.astype(np.float64) - expected))) if expected.size else 0.0
    assert error <= TOLERANCE * scale, f"{what}: max error {error:.3g} > {TOLERANCE} x {scale:.3g}"


def _check_against_interpreter(module, directory: Path, batch=None, steps: int = 3,
                               threads: int = 8) -> None:
    result = compile_and_run(module, directory, batch, steps, threads)
    assert "OK" in result.stdout, result.stdout
    losses, params = _reference(module, result.data.inputs, steps)
    np.testing.assert_allclose(result.losses, losses, rtol=TOLERANCE, atol=1e-6)
    assert set(result.params) == set(params)
    for name, expected in params.items():
        _assert_close(result.params[name].reshape(expected.shape), expected, name)


@pytest.mark.parametrize(
    "pipeline",
    [
        "train-full{lr=0.05}",
        "train-full{lr=0.05 momentum=0.9 nesterov=true weight-decay=0.001}",
        "train-full{optimizer=adam lr=0.01 weight-decay=0.001}",
        "train-last{layers=2 lr=0.1 reduction=sum}",
        "train-full{loss=mse lr=0.05}",
    ],
)
def test_example_training_step_matches_interpreter(pipeline: str, tmp_path: Path):
    module = _apply(model_io.load_model(EXAMPLE), pipeline)
    batch = model_io.read_npz(EXAMPLE_INPUT) if "mse" not in pipeline else None
    if batch is not None:
        batch = {k: batch[k] for k in ("image", "labels")}
    _check_against_interpreter(module, tmp_path / "project", batch)


RANDOM_MODELS = random_models(trainable="all", max_ops=6, dtype="f32")


def _trained(model) -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """The model after train-full (mse) and a batch for it; a model with nothing to
    train is not a C question (`assume` rejects it). The strategy's inputs are tame for
    its ops (positive bases for pow, ...); the target of the loss is drawn like them."""
    module = model.module.clone()
    try:
        _apply(module, "train-full{loss=mse lr=0.01}")
    except PassFailedException:
        assume(False)
    reference = Session(model.module).run("forward", model.inputs)[0]
    target = np.random.default_rng(0).standard_normal(reference.shape).astype(np.float32)
    return module, {**model.inputs, "labels": target}


@settings(max_examples=8)
@given(model=RANDOM_MODELS)
def test_random_models_match_interpreter(model, tmp_path_factory):
    module, batch = _trained(model)
    directory = tmp_path_factory.mktemp("random")
    _check_against_interpreter(module, directory / "project", batch, steps=3)


def test_results_do_not_depend_on_the_number_of_threads(tmp_path: Path):
    module = _apply(model_io.load_model(EXAMPLE), "train-full{lr=0.05 momentum=0.9}")
    emit_c_project(module, tmp_path / "project", steps=3)
    build(tmp_path / "project")
    runs = [run_project(tmp_path / "project", 3, threads) for threads in (1, 2, 8)]
    first_out, first_params = runs[0]
    for out, params in runs[1:]:
        assert losses_of(out) == losses_of(first_out)
        for name in first_params:
            np.testing.assert_array_equal(params[name], first_params[name])


def test_sanitizers_report_nothing(tmp_path: Path):
    module = _apply(model_io.load_model(EXAMPLE), "train-full{optimizer=adam}")
    emit_c_project(module, tmp_path / "project", steps=2)
    build(tmp_path / "project", "network_test_asan")
    result = subprocess.run(
        [str(tmp_path / "project" / "network_test_asan"), "--threads", "8"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr


def test_generated_project_is_deterministic(tmp_path: Path):
    module = _apply(model_io.load_model(EXAMPLE), "train-full")
    for name in ("a", "b"):
        emit_c_project(module, tmp_path / name, steps=2)
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert twin.read_bytes() == path.read_bytes(), path.name


def test_generated_code_names_the_ir_ops(tmp_path: Path):
    module = _apply(model_io.load_model(EXAMPLE), "train-full")
    emit_c_project(module, tmp_path / "project", steps=1)
    source = (tmp_path / "project" / "network.c").read_text()
    assert "/* nn.conv2d -> c1 */" in source
    assert "/* train.conv2d_grad_weight -> d_conv2_weight */" in source
    assert re.search(r"PI_L2 static uint8_t edge_arena_L2\[\d+\]", source)


def test_project_compiles_for_riscv_with_core_v(tmp_path: Path):
    module = _apply(model_io.load_model(EXAMPLE), "train-full")
    emit_c_project(module, tmp_path / "project", steps=1)
    zig = f"{sys.executable} -m ziglang"
    result = subprocess.run(
        ["make", "-C", str(tmp_path / "project"), "riscv-check", f"ZIG={zig}"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    objects = list((tmp_path / "project").rglob("*.rv32.o"))
    runtime = list((tmp_path / "project" / "runtime").glob("*.c"))
    # network, test data, the parameter blob, the runtime
    assert len(objects) == 3 + len(runtime)


@pytest.mark.parametrize("fixture", ["CCT_Train_CCT2_LP", "CCT_Train_CCT2_FT2"])
def test_cct2_one_step_in_c_reproduces_the_fixture(fixture: str, shared_model, tmp_path: Path):
    folder = shared_model(fixture)
    module = import_onnx(folder / "network_infer.onnx")
    expected = model_io.read_npz(folder / "outputs.npz")
    names = [k.removesuffix("_updated") for k in expected]
    regex = "|".join(re.escape(n) for n in names)
    _apply(module, f'raise-layer-norm,freeze{{trainable="{regex}"}},autodiff{{lr=0.01}},'
                   "canonicalize,cse,dce")
    inputs = model_io.read_npz(folder / "inputs.npz")
    batch = {"input": inputs["input"], "labels": inputs["labels"]}
    result = compile_and_run(module, tmp_path / "project", batch, steps=1)
    for key, reference in expected.items():
        got = result.params[key.removesuffix("_updated")].reshape(reference.shape)
        np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-6, err_msg=key)


def test_emit_c_errors_are_clean(tmp_path: Path, capsys):
    assert main([str(EXAMPLE), "--pipeline", "train-full", "--emit", "c"]) == 1
    assert "(--emit c) writes a project directory: give it with -o DIR" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code = main([str(EXAMPLE), "--pipeline", "train-full", "--emit", "c", "-o",
                 str(blocker / "project")])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot create" in err and "Traceback" not in err
    assert blocker.read_text() == "not a directory"
    # Missing parent directories of the project are created.
    code = main([str(EXAMPLE), "--pipeline", "train-full", "--emit", "c", "-o",
                 str(tmp_path / "new" / "project")])
    assert code == 0 and (tmp_path / "new" / "project" / "network.c").is_file()


@settings(max_examples=2)
@given(model=RANDOM_MODELS)
def test_random_models_under_sanitizers(model, tmp_path_factory):
    module, batch = _trained(model)
    directory = tmp_path_factory.mktemp("asan") / "project"
    emit_c_project(module, directory, batch, steps=3)
    build(directory, "network_test_asan")
    result = subprocess.run(
        [str(directory / "network_test_asan"), "--threads", "8"], capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime error" not in result.stderr


def test_parameters_export_and_import(tmp_path: Path):
    """`edge_params` exposes every parameter's storage and `edge_set_param` replaces one;
    a training step then uses the imported values (checked against the interpreter)."""
    import ctypes

    module = _apply(model_io.load_model(EXAMPLE), "train-full{lr=0.1}")
    project = tmp_path / "project"
    data = emit_c_project(module, project, steps=1)
    library = project / "libnetwork.so"
    sources = [str(project / n) for n in ("network.c", "params.S")] + [
        str(p) for p in sorted((project / "runtime").glob("*.c"))
    ]
    subprocess.run(
        ["gcc", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror", "-std=gnu11",
         f"-I{project}", f"-I{project / 'runtime'}", *sources, "-o", str(library),
         "-lm", "-pthread"],
        check=True, capture_output=True, cwd=project,  # params.S includes params.bin
    )
    net = ctypes.CDLL(str(library))

    class Param(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p),
                    ("count", ctypes.c_size_t), ("element_size", ctypes.c_size_t)]

    # init() loads the linked-in initial values (params.bin): before it, storage is zero
    assert net.init() == 0
    net.edge_params.restype = ctypes.POINTER(Param)
    count = ctypes.c_size_t()
    table = net.edge_params(ctypes.byref(count))
    exported = {
        table[i].name.decode(): np.ctypeslib.as_array(
            ctypes.cast(table[i].data, ctypes.POINTER(ctypes.c_float)), (table[i].count,)
        ).copy()
        for i in range(count.value)
    }
    initial = Session(module).params
    assert set(exported) == set(initial)
    for name, value in initial.items():
        np.testing.assert_array_equal(exported[name], value.reshape(-1))
    new_bias = np.linspace(-1, 1, 10).astype(np.float32)
    net.edge_set_param.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    assert net.edge_set_param(b"fc_bias", new_bias.ctypes.data, new_bias.nbytes) == 0
    assert net.edge_set_param(b"nope", new_bias.ctypes.data, new_bias.nbytes) == -1
    assert net.edge_set_param(b"fc_bias", new_bias.ctypes.data, 4) == -2
    net.train_step.restype = ctypes.c_float
    image = np.ascontiguousarray(data.inputs["image"], np.float32)
    labels = np.ascontiguousarray(data.inputs["labels"], np.int32)
    loss = net.train_step(ctypes.c_void_p(image.ctypes.data), ctypes.c_void_p(labels.ctypes.data))
    session = Session(module, {"fc_bias": new_bias})
    (expected,) = session.run("train_step", {"image": image, "labels": labels})
    assert abs(loss - float(expected)) <= 1e-4 * max(1.0, abs(float(expected)))
