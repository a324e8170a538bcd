"""Tiled C (the tile and DMA levels through `backends/c/tiles.py` and
`runtime/edge_dma.c`): the generated training step equals the interpreter's, with 1 and
8 threads and under AddressSanitizer/UBSan; the host DMA shim copies only at a wait, so
a wait placed after the compute that needs it fails the host test (the interpreter in
its immediate mode does not see it); CCT2 FT2 compiled for GAP9 reproduces Deeploy's
published one-step fixture.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from c_project import build, run_project
from c_runtime import c_struct, int_array, pointer, runtime
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from plan_checks import train_or_reject, training_models
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.backends.c.compile import emit_c_project
from edge_opt.dialects import dma, kernel, tile
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir import model_io
from edge_opt.ir.session import Session, get_function, input_names
from edge_opt.support.tiling import FULL, Halo, Schedule
from edge_opt.testing import RandomModel, apply_passes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_cnn.mlir"
EXAMPLE_INPUT = ROOT / "examples" / "tiny_cnn_input.npz"


def tiled(module: ModuleOp, l1: int, double_buffer: bool = True,
          weights: str = "L2") -> ModuleOp:
    db = str(double_buffer).lower()
    return apply_passes(
        f"lower-to-buffers{{soc=gap9 l1-bytes={l1} double-buffer={db} weights={weights}}}",
        module,
    )


def tiny_cnn(l1: int, double_buffer: bool = True) -> tuple[ModuleOp, dict]:
    data = np.load(EXAMPLE_INPUT)
    tensor = apply_passes("train-full{lr=0.05}", model_io.load_model(EXAMPLE))
    return tiled(tensor, l1, double_buffer), {"image": data["image"], "labels": data["labels"]}


def assert_c_equals_interpreter(module: ModuleOp, directory: Path, batch, threads: int,
                                binary: str = "network_test", steps: int = 2) -> None:
    emit_c_project(module, directory, batch, steps=steps)
    build(directory, binary)
    stdout, params = run_project(directory, steps, threads, binary,
                                 names=list(Session(module).params))
    assert "OK" in stdout and "runtime error" not in stdout, stdout[-3000:]
    session = Session(module)
    for _ in range(steps):
        session.run("train_step", batch)
    for name, expected in session.params.items():
        np.testing.assert_allclose(params[name].reshape(expected.shape), expected,
                                   rtol=1e-4, atol=1e-5, err_msg=f"@{name}")


@pytest.mark.parametrize("l1,double_buffer", [(2560, True), (4096, True), (4096, False)])
@pytest.mark.parametrize("threads", [1, 8])
def test_tiled_tiny_cnn_in_c_equals_the_interpreter(l1: int, double_buffer: bool,
                                                   threads: int, tmp_path: Path):
    module, batch = tiny_cnn(l1, double_buffer)
    cut = [op for op in module.walk()
           if isinstance(op, tile.ForOp) and tile.schedule_of(op.schedule).count > 1]
    assert cut, "the budget cuts some kernel calls into tiles"
    assert_c_equals_interpreter(module, tmp_path / "project", batch, threads)


def test_tiled_c_under_sanitizers(tmp_path: Path):
    module, batch = tiny_cnn(2560)
    assert_c_equals_interpreter(module, tmp_path / "project", batch, 8, "network_test_asan")


@settings(max_examples=3)
@given(model=training_models(batch=(1, 3), max_dim=6))
def test_tiled_random_models_in_c(model: RandomModel, tmp_path_factory):
    tensor = train_or_reject("train-full{loss=mse lr=0.01}", model.module)
    try:
        module = tiled(tensor, 4096)
    except PassFailedException as e:
        if "does not fit L1" not in str(e):
            raise
        reject()
    output = get_function(tensor, "forward").function_type.outputs.data[0]
    labels = np.random.default_rng(0).standard_normal(output.get_shape()).astype(np.float32)
    names = input_names(get_function(module, "train_step"))
    batch = dict(zip(names, [*model.inputs.values(), labels], strict=True))
    directory = tmp_path_factory.mktemp("tiled") / "project"
    assert_c_equals_interpreter(module, directory, batch, 8, "network_test_asan")


def test_a_wait_after_its_compute_fails_the_host_test(tmp_path: Path):
    """The interpreter's immediate mode lands copies at their start and misses it; the
    host shim lands them at the wait, so the kernel reads NaN and the test fails."""
    module, batch = tiny_cnn(2560)
    loop = next(op for op in get_function(module, "train_step").walk()
                if isinstance(op, tile.ForOp) and tile.schedule_of(op.schedule).count > 2)
    wait = next(op for op in loop.body.block.ops
                if isinstance(op, dma.WaitOp) and op.token in loop.body.block.args[1:])
    compute = next(op for op in loop.body.block.ops if isinstance(op, kernel.KernelOp))
    wait.detach()
    loop.body.block.insert_op_after(wait, compute)
    directory = tmp_path / "project"
    emit_c_project(module, directory, batch, steps=1)  # the interpreter is fine with it
    build(directory)
    result = subprocess.run([str(directory / "network_test"), "--threads", "1"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "OK" not in result.stdout, result.stdout


def test_tiled_c_has_one_loop_per_kernel_call_named_by_its_op(tmp_path: Path):
    module, batch = tiny_cnn(2560)
    emit_c_project(module, tmp_path / "project", batch, steps=1)
    source = (tmp_path / "project" / "network.c").read_text()
    loops = re.findall(r"/\* (kernel\.\w+) over (\d+) tile\(s\)", source)
    assert len(loops) == sum(isinstance(op, tile.ForOp) for op in module.walk())
    assert {"kernel.conv2d", "kernel.linear", "kernel.sgd"} <= {name for name, _ in loops}
    assert any(int(count) > 1 for _, count in loops)
    assert re.search(r"PI_CL_L1 static uint8_t edge_arena_L1\[\d+\]", source)
    assert "edge_dma_start(" in source and "edge_dma_wait(" in source


def test_tiled_c_compiles_for_riscv(tmp_path: Path):
    module, batch = tiny_cnn(2560)
    emit_c_project(module, tmp_path / "project", batch, steps=1)
    result = subprocess.run(
        ["make", "-C", str(tmp_path / "project"), "riscv-check",
         f"ZIG={sys.executable} -m ziglang"], capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("binary,threads", [("network_test", 1), ("network_test", 8),
                                            ("network_test_asan", 8)])
def test_cct2_ft2_tiled_for_gap9_reproduces_the_fixture(shared_model, binary: str,
                                                        threads: int, tmp_path: Path):
    """Deeploy's CCT2 FT2 one-step fixture (its trainable set, SGD lr 0.01), compiled
    for GAP9: tiled into its L1, weights in L3 (they do not fit L2 with the
    activations), run through the host DMA shim."""
    folder = shared_model("CCT_Train_CCT2_FT2")
    expected = model_io.read_npz(folder / "outputs.npz")
    regex = "|".join(re.escape(k.removesuffix("_updated")) for k in expected)
    tensor = apply_passes(f'raise-layer-norm,freeze{{trainable="{regex}"}},'
                          "autodiff{lr=0.01},canonicalize,cse,dce",
                          import_onnx(folder / "network_infer.onnx"))
    module = apply_passes("lower-to-buffers{soc=gap9 weights=L3}", tensor)
    memory = module.attributes["kernel.memory"]
    l1 = memory.data["L1"].data["arena"].value.data  # type: ignore[attr-defined]
    assert 0 < l1 <= 120_000  # GAP9's usable L1
    inputs = model_io.read_npz(folder / "inputs.npz")
    batch = {"input": inputs["input"], "labels": inputs["labels"]}
    directory = tmp_path / "project"
    emit_c_project(module, directory, batch, steps=1)
    build(directory, binary)
    stdout, params = run_project(directory, 1, threads, binary, names=list(
        Session(module).params))
    assert "OK" in stdout and "runtime error" not in stdout, stdout[-2000:]
    for key, reference in expected.items():
        got = params[key.removesuffix("_updated")].reshape(reference.shape)
        np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-6, err_msg=key)


def test_labels_are_found_through_the_tiles():
    """The C test draws class labels in [0, classes): the classes of a cross-entropy
    that reads its labels through a DMA copy into an L1 slot."""
    from edge_opt.ir.session import label_inputs

    module, _ = tiny_cnn(2560)
    assert label_inputs(get_function(module, "train_step")) == {1: 10}


@settings(max_examples=60)
@given(data=st.data())
def test_runtime_tile_arithmetic_equals_the_interpreters(data):
    """`edge_tile_selected`, `edge_tile_window`, `edge_tile_packed`, `edge_tile_pad`
    and `edge_tile_ragged` (C) against `support/tiling.Schedule` (the interpreter's),
    with and without a halo axis."""
    rank = data.draw(st.integers(1, 3))
    extents = tuple(data.draw(st.integers(1, 9)) for _ in range(rank))
    sizes = tuple(data.draw(st.integers(1, n)) for n in extents)
    order = tuple(data.draw(st.permutations(range(rank))))
    schedule = Schedule(extents, sizes, order)
    operand_map = tuple(data.draw(st.sampled_from([FULL, d])) for d in range(rank))
    shape = [extents[d] if d != FULL else data.draw(st.integers(1, 4)) for d in operand_map]
    followed = [a for a, d in enumerate(operand_map) if d != FULL]
    halo = None
    if followed and data.draw(st.booleans()):
        axis = data.draw(st.sampled_from(followed))
        stride, span = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
        before, after = data.draw(st.integers(0, span - 1)), data.draw(st.integers(0, span - 1))
        # the rows the dimension's elements reach, less the padding
        shape[axis] = max((extents[operand_map[axis]] - 1) * stride + span - before - after, 1)
        halo = Halo(axis, stride, span, before)
    shape = tuple(shape)
    lib = runtime()
    c_schedule = c_struct("edge_schedule_t")(
        rank, schedule.count, int_array(extents), int_array(sizes),
        int_array(schedule.counts),
        int_array([int(np.prod([schedule.counts[e] for e in order[order.index(d) + 1:]]))
                   for d in range(rank)]))  # the steps, independently of Schedule.steps
    c_operand = c_struct("edge_operand_t")(
        rank, int_array(shape), int_array(operand_map), schedule.window_stride(operand_map),
        *((halo.axis, halo.stride, halo.span, halo.before) if halo else (-1, 0, 0, 0)))
    base = np.zeros(int(np.prod(shape)), np.float32)
    for number in range(-1, schedule.count + 1):
        for when, expected in ((0, 0 <= number < schedule.count),
                               (1, 0 <= number < schedule.count
                                and schedule.is_first_of_window(operand_map, number)),
                               (2, 0 <= number < schedule.count
                                and schedule.is_last_of_window(operand_map, number))):
            assert lib.edge_tile_selected(ctypes.byref(c_schedule), ctypes.byref(c_operand),
                                          number, when) == int(expected)
        if not 0 <= number < schedule.count:
            continue
        offsets, lengths = schedule.window(operand_map, shape, number, halo)
        box = c_struct("edge_box_t")()
        lib.edge_tile_window.restype = ctypes.c_void_p
        first = lib.edge_tile_window(ctypes.byref(c_schedule), ctypes.byref(c_operand),
                                     number, pointer(base), 4, ctypes.byref(box))
        flat = int(np.ravel_multi_index(offsets, shape)) if shape else 0
        assert first == base.ctypes.data + 4 * flat
        assert list(box.shape[:rank]) == list(lengths)
        assert list(box.strides[:rank]) == [int(np.prod(shape[a + 1:])) for a in range(rank)]
        packed = c_struct("edge_box_t")()
        lib.edge_tile_packed(ctypes.byref(c_schedule), ctypes.byref(c_operand), number,
                             ctypes.byref(packed))
        padded = schedule.padded(operand_map, shape, number, halo)[1]
        assert list(packed.shape[:rank]) == list(padded)
        if halo is not None:
            before, inside, _ = schedule.interior(operand_map, shape, number, halo)
            slot = np.full(padded, 7.0, np.float32)
            inner = c_struct("edge_box_t")()
            lib.edge_tile_pad.restype = ctypes.c_void_p
            landing = lib.edge_tile_pad(
                ctypes.byref(c_schedule), ctypes.byref(c_operand), number, pointer(slot),
                ctypes.byref(packed), pointer(base), ctypes.byref(box), 4,
                ctypes.byref(inner), 1)
            rows = [slice(None)] * rank
            rows[halo.axis] = slice(before, before + inside)
            expected = np.zeros(padded, np.float32)
            expected[tuple(rows)] = 7.0  # only the rows outside the operand are zeroed
            np.testing.assert_array_equal(slot, expected)
            start = int(np.ravel_multi_index(
                [before if a == halo.axis else 0 for a in range(rank)], padded))
            assert landing == slot.ctypes.data + 4 * start
            assert list(inner.shape[:rank]) == list(lengths)
            assert list(inner.strides[:rank]) == list(packed.strides[:rank])
        ragged = sum(1 << d for d, r in enumerate(schedule.ragged(number)) if r)
        assert lib.edge_tile_ragged(ctypes.byref(c_schedule), number) == ragged


def test_cct2_train_full_tiled_for_gap9_in_c_equals_the_interpreter(shared_model,
                                                                    tmp_path: Path):
    """Every parameter of CCT2 trains: the parameters go to L3 by themselves (with them
    in L2, L2 would overflow), every kernel runs on L1 tiles, and the C step equals the
    interpreter's."""
    from edge_opt.passes.lower_to_buffers import lower_to_buffers

    folder = shared_model("CCT_Train_CCT2_FT2")
    tensor = apply_passes("train-full{lr=0.01}", import_onnx(folder / "network_infer.onnx"))
    module = lower_to_buffers(tensor, "gap9")
    assert "placed in L3" in module.attributes["kernel.weights_note"].data  # type: ignore[attr-defined]
    figures = {level: f.data["arena"].value.data  # type: ignore[attr-defined]
               for level, f in module.attributes["kernel.memory"].data.items()}  # type: ignore[attr-defined]
    assert 0 < figures["L1"] <= 120_000
    inputs = model_io.read_npz(folder / "inputs.npz")
    batch = {"input": inputs["input"], "labels": inputs["labels"]}
    assert_c_equals_interpreter(module, tmp_path / "project", batch, 8, steps=1)
