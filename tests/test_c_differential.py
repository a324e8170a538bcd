"""Differential testing of the C backend (edge_opt.testing.c_differential): random
models through the C project against the interpreter, a planted bug in one C kernel
caught (and shrunk to a small model), reproducers that replay, the sanitizer build.

Budget: every check builds a C project; the runtime's objects are compiled once per
(the `cache` fixture), so a check costs well under a second
after the first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, reject, settings
from hypothesis import strategies as st
from xdsl.dialects import func

from edge_opt.backends.c import host
from edge_opt.dialects import nn
from edge_opt.testing import ForwardBuilder, c_differential
from edge_opt.testing.c_differential import (
    C_PIPELINES,
    RuntimeMutation,
    UnsupportedModel,
    c_backend_models,
    check_c_backend,
    main,
    replay_command,
    write_c_reproducer,
)

RELU_IS_IDENTITY = RuntimeMutation(
    "edge_kernels_elementwise.c",
    "const uint32_t negative = bits - 0x80000001u <= 0x7F7FFFFFu;",
    "const uint32_t negative = 0;",
)
"""A planted bug: the forward relu kernel passes negative numbers through."""

RELU_ONE_PAST_THE_END = RuntimeMutation(
    "edge_kernels_elementwise.c",
    "edge_split(n, &begin, &end);\n  for (int32_t i = begin; i < end; i++) {\n"
    "    uint32_t bits;",
    "edge_split(n, &begin, &end);\n  for (int32_t i = begin; i <= end; i++) {\n"
    "    uint32_t bits;",
)
"""A planted memory bug: the forward relu kernel reads and writes one element past
its buffers."""

TRAIN = "train-full{loss=mse lr=0.05}"


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """The runtime object cache (`host.default_cache()`, also of the replay
    subprocesses) in a directory of this module's, not in the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield host.default_cache()


def _linear_relu():
    """relu(linear(x)): 2x3 -> 2x4, half of the values of linear negative."""
    b = ForwardBuilder((2, 3), seed=0, dtype=np.float32)
    w = b.param("w", (4, 3))
    bias = b.param("bias", (4,), value=np.zeros(4))
    y = b.op(nn.ReluOp(b.op(nn.LinearOp(b.x, w, bias), "h")), "y")
    return b.module(y), b.inputs


def _forward_ops(module) -> list[str]:
    forward = next(op for op in module.ops if isinstance(op, func.FuncOp))
    return [op.name for op in forward.body.block.ops if not isinstance(op, func.ReturnOp)]


@pytest.mark.parametrize("pipeline", ["infer", TRAIN])
def test_a_correct_backend_passes(pipeline: str):
    module, inputs = _linear_relu()
    check_c_backend(module, inputs, pipeline=pipeline, steps=2)


@settings(max_examples=6, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(model=c_backend_models(max_ops=4), pipeline=st.sampled_from(C_PIPELINES))
def test_random_models_agree_with_the_interpreter(model, pipeline: str):
    try:
        check_c_backend(model.module, model.inputs, pipeline=pipeline)
    except UnsupportedModel:
        reject()


def test_a_model_made_only_of_views_compiles():
    """Found by the differential test: `--emit c` of a model with nothing in L2 (a
    lone reshape) crashed while choosing where the weights go."""
    b = ForwardBuilder((1, 1), dtype=np.float32)
    module = b.module(b.op(nn.ReshapeOp(b.x, ())))
    check_c_backend(module, b.inputs, pipeline="infer")


def test_a_compiler_crash_is_a_failure_and_a_refusal_is_not(monkeypatch):
    module, inputs = _linear_relu()
    with pytest.raises(UnsupportedModel, match="matches no parameter"):
        check_c_backend(module, inputs, pipeline="freeze{trainable=nothing},autodiff")

    def crash(*args, **kwargs):
        raise KeyError("L2")

    monkeypatch.setattr(c_differential, "emit_c_project", crash)
    with pytest.raises(AssertionError, match="--emit c crashed: KeyError: 'L2'"):
        check_c_backend(module, inputs, pipeline="infer")


@pytest.mark.parametrize("pipeline", ["infer", TRAIN])
def test_a_planted_kernel_bug_is_caught(pipeline: str, tmp_path: Path):
    module, inputs = _linear_relu()
    with pytest.raises(AssertionError) as failure:
        check_c_backend(module, inputs, pipeline=pipeline, runtime_patch=RELU_IS_IDENTITY,
                        workdir=tmp_path)
    message = str(failure.value)
    what = "output 0:" if pipeline == "infer" else "loss of step 1:"
    assert what in message and "max abs error" in message and "max rel error" in message
    assert f"project: {tmp_path}" in message and "nn.relu" in message


def test_a_mutation_that_does_not_apply_is_an_error(tmp_path: Path):
    module, inputs = _linear_relu()
    typo = RuntimeMutation("edge_kernels_elementwise.c", "no such text", "x")
    with pytest.raises(ValueError, match="occurs 0 times, expected once"):
        check_c_backend(module, inputs, runtime_patch=typo, workdir=tmp_path)


def test_random_models_find_the_planted_bug_and_shrink_it():
    def caught(model) -> bool:
        try:
            check_c_backend(model.module, model.inputs, pipeline="infer",
                            runtime_patch=RELU_IS_IDENTITY)
        except AssertionError:
            return True
        except UnsupportedModel:
            return False
        return False

    # Among a few ops (any of which may surround a relu), so that a small derandomized
    # budget draws relus whatever the generators' order of draws.
    smallest = find(c_backend_models(ops=["relu", "add", "linear", "conv2d", "tanh"],
                                     max_ops=4), caught,
                    settings=settings(max_examples=40, database=None, deadline=None,
                                      derandomize=True))
    ops = _forward_ops(smallest.module)
    assert "nn.relu" in ops and len(ops) <= 5, ops
    # The bug is the mutation's: the real runtime agrees on the same model.
    check_c_backend(smallest.module, smallest.inputs, pipeline="infer")


def test_the_reproducer_replays(cache: Path, tmp_path: Path):
    module, inputs = _linear_relu()
    readme = write_c_reproducer(module, inputs, TRAIN, tmp_path / "bug",
                                runtime_patch=RELU_IS_IDENTITY)
    text = readme.read_text()
    assert replay_command(tmp_path / "bug") in text
    assert {"repro.mlir", "inputs.npz", "case.json", "project", "README.md"} <= {
        p.name for p in (tmp_path / "bug").iterdir()}
    # The project as written (with the planted bug) builds, and its own test fails
    # (built through the object cache first, so that `make` compiles only the network).
    host.build(tmp_path / "bug" / "project", cache=cache)
    make = subprocess.run(["make", "-C", str(tmp_path / "bug" / "project"), "host"],
                          check=False, capture_output=True, text=True)
    assert make.returncode != 0 and "MISMATCH" in make.stdout, make.stdout + make.stderr
    # The replay command (the mutation travels in case.json) fails the same way...
    replayed = subprocess.run([sys.executable, "-m", "edge_opt.testing.c_differential",
                               str(tmp_path / "bug")], check=False, capture_output=True, text=True)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "loss of step 1" in replayed.stderr
    # ... and a reproducer of the same case without the bug replays clean.
    write_c_reproducer(module, inputs, TRAIN, tmp_path / "fixed")
    assert main([str(tmp_path / "fixed")]) == 0
    host.build(tmp_path / "fixed" / "project", cache=cache)
    make = subprocess.run(["make", "-C", str(tmp_path / "fixed" / "project"), "host"],
                          check=False, capture_output=True, text=True)
    assert make.returncode == 0 and "OK" in make.stdout, make.stdout + make.stderr


def _sanitizers_work() -> bool:
    """Whether the host compiler links -fsanitize=address,undefined (checked, not
    assumed: a missing libasan must fail loudly in `test_the_sanitizer_build_...`)."""
    probe = subprocess.run(
        ["gcc", "-fsanitize=address,undefined", "-x", "c", "-", "-o", "/dev/null"],
        input="int main(void) { return 0; }\n", check=False, capture_output=True, text=True)
    return probe.returncode == 0


def test_the_host_compiler_has_the_sanitizers():
    assert _sanitizers_work(), "gcc -fsanitize=address,undefined does not link here"


def test_the_sanitizer_build_passes_and_catches_a_memory_bug():
    module, inputs = _linear_relu()
    check_c_backend(module, inputs, pipeline=TRAIN, sanitize=True)
    b = ForwardBuilder((2, 3), dtype=np.float32)  # relu reads the input array itself
    only_relu = b.module(b.op(nn.ReluOp(b.x)))
    with pytest.raises(AssertionError, match="AddressSanitizer"):
        check_c_backend(only_relu, b.inputs, pipeline="infer", sanitize=True,
                        threads=1, runtime_patch=RELU_ONE_PAST_THE_END)
