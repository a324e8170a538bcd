"""The check that a pass keeps the meaning of a module.

`assert_pass_preserves_semantics` runs the pass (or pipeline) on a copy, verifies after
every pass, interprets both modules on the same inputs (`random_inputs` by default) and
compares every output and the parameter state after the call."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import VerifyException

from edge_opt.ir.context import make_context
from edge_opt.ir.interpreters.dma import DmaMode
from edge_opt.ir.model_io import first_line, print_module
from edge_opt.ir.session import Session, get_function, input_names, params_of
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.support.dtypes import numpy_dtype

DEFAULT_TOLERANCES: dict[np.dtype, tuple[float, float]] = {
    np.dtype(np.float16): (1e-2, 1e-3),
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-9, 1e-11),
}
"""`(rtol, atol)` per output dtype when the caller gives none; exact for integers."""


def random_inputs(
    function: func.FuncOp, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Inputs for `function` by input name: standard normal floats, integers in [0, 2)
    (valid class labels for any classifier), random booleans."""
    inputs: dict[str, np.ndarray] = {}
    for name, type in zip(
        input_names(function), function.function_type.inputs.data, strict=True
    ):
        if not isinstance(type, TensorType):
            raise NotImplementedError(f"random_inputs: input '{name}' is a {type}")
        shape = tuple(type.get_shape())
        dtype = numpy_dtype(type.element_type)
        if dtype.kind == "f":
            array = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            array = rng.random(shape) < 0.5
        else:
            array = rng.integers(0, 2, shape).astype(dtype)
        inputs[name] = array
    return inputs


# --------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------

PassOrPipeline = ModulePass | Sequence[ModulePass] | str


def expand_passes(pass_or_pipeline: PassOrPipeline) -> tuple[ModulePass, ...]:
    """The passes of a pass, a list of passes or a pipeline spec (named pipelines
    expanded)."""
    if isinstance(pass_or_pipeline, str):
        return expand(parse_pipeline(pass_or_pipeline))
    if isinstance(pass_or_pipeline, ModulePass):
        return expand([pass_or_pipeline])
    return expand(pass_or_pipeline)


def _describe(passes: Sequence[ModulePass]) -> str:
    return ",".join(str(p.spec()) for p in passes) or "(no passes)"


_PRINT_LIMIT = 40_000
"""Modules longer than this (printed) go to files named in the message instead."""


def _modules_text(before: ModuleOp, after: ModuleOp) -> str:
    texts = print_module(before), print_module(after)
    if sum(len(t) for t in texts) <= _PRINT_LIMIT:
        return f"\n--- before ---\n{texts[0]}--- after ---\n{texts[1]}"
    folder = tempfile.mkdtemp(prefix="edge-opt-semantics-")
    paths = [os.path.join(folder, n) for n in ("before.mlir", "after.mlir")]
    for path, text in zip(paths, texts, strict=True):
        with open(path, "w") as f:
            f.write(text)
    return f"\nmodules written to {paths[0]} and {paths[1]}"


def _mismatch(
    actual: np.ndarray, expected: np.ndarray, rtol: float | None, atol: float | None
) -> str | None:
    """Why `actual` is not `expected` within the tolerance, or None if it is."""
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        return (
            f"is {actual.dtype}{list(actual.shape)}, expected "
            f"{expected.dtype}{list(expected.shape)}"
        )
    default = DEFAULT_TOLERANCES.get(expected.dtype, (0.0, 0.0))
    rtol = default[0] if rtol is None else rtol
    atol = default[1] if atol is None else atol
    if expected.dtype.kind not in "fc":
        actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    finite = np.isfinite(actual) & np.isfinite(expected)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.where(same, 0.0, np.where(finite, np.abs(actual - expected), np.inf))
    if np.all(same | (error <= atol + rtol * np.where(finite, np.abs(expected), 0.0))):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(finite, error / np.abs(expected), np.inf)
        relative = np.where(error == 0, 0.0, relative)
    worst = np.unravel_index(np.argmax(error), error.shape) if error.ndim else ()
    return (
        f"differs: max abs error {np.max(error):.3e}, max rel error "
        f"{np.max(relative):.3e} (rtol {rtol:g}, atol {atol:g}); worst at index "
        f"{list(map(int, worst))}: {actual[worst].item()!r} instead of "
        f"{expected[worst].item()!r}"
    )


def assert_pass_preserves_semantics(
    pass_or_pipeline: PassOrPipeline,
    module: ModuleOp,
    inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | None = None,
    *,
    function: str = "forward",
    rtol: float | None = None,
    atol: float | None = None,
    params: Mapping[str, np.ndarray] | None = None,
    dma: DmaMode = "immediate",
) -> ModuleOp:
    """Checks that `pass_or_pipeline` keeps the meaning of `@function` of `module`, and
    returns the transformed module (`module` itself is left unchanged).

    `pass_or_pipeline` is a `ModulePass`, a sequence of them, or a pipeline spec such as
    `"canonicalize,cse"` (named pipelines are expanded into their passes). The passes
    run on a clone, which must verify after each one. Both modules are then interpreted
    on the same `inputs` (default: `random_inputs` of the function with seed 0) and the
    same `params` values (default: the inline ones), and every output, as well as every
    parameter both modules declare after the call (training functions write them), must
    agree within `rtol`/`atol` (default: `DEFAULT_TOLERANCES` per dtype). `dma` is how
    the transformed module's DMA copies land (`"deferred"`: only at their wait, which
    catches a schedule that reads a tile before it arrived).

    Raises AssertionError naming the pass(es), the output (or parameter), the max
    absolute and relative error, and showing both modules.
    """
    passes = expand_passes(pass_or_pipeline)
    described = _describe(passes)
    module.verify()
    transformed = _transformed(module, passes, described)
    problems = _differences(module, transformed, function, inputs, rtol, atol, params, dma)
    if problems:
        raise AssertionError(
            f"{described} changed the meaning of @{function}:\n  "
            + "\n  ".join(problems)
            + _modules_text(module, transformed)
        )
    return transformed


def apply_passes(pass_or_pipeline: PassOrPipeline, module: ModuleOp) -> ModuleOp:
    """A copy of `module` after a pass, a list of passes or a pipeline spec (named
    pipelines expanded), verified after every pass; an error names the pass."""
    passes = expand_passes(pass_or_pipeline)
    return _transformed(module, passes, _describe(passes))


def _transformed(
    module: ModuleOp, passes: Sequence[ModulePass], described: str
) -> ModuleOp:
    """A clone of `module` with `passes` applied, verified after each pass."""
    transformed = module.clone()
    ctx = make_context()
    for p in passes:
        try:
            p.apply(ctx, transformed)
        except Exception as e:
            e.add_note(f"while applying {p.spec()} (in {described})")
            raise
        try:
            transformed.verify()
        except VerifyException as e:
            raise AssertionError(
                f"{p.spec()} (in {described}) produced IR that does not verify: "
                f"{first_line(e)}{_modules_text(module, transformed)}"
            ) from None
    return transformed


def _differences(
    module: ModuleOp,
    transformed: ModuleOp,
    function: str,
    inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | None,
    rtol: float | None,
    atol: float | None,
    params: Mapping[str, np.ndarray] | None,
    dma: DmaMode = "immediate",
) -> list[str]:
    """How `@function` of `transformed` differs from that of `module` (the outputs, and
    the parameters both declare after the call), one line per difference."""
    original = get_function(module, function)
    if inputs is None:
        inputs = random_inputs(original, np.random.default_rng(0))
    names = input_names(original)
    if isinstance(inputs, Mapping) and set(inputs) == set(names):
        # By position from here on: a pass may rename arguments, not reorder them.
        inputs = [inputs[name] for name in names]

    def session(m: ModuleOp, dma: DmaMode = "immediate") -> Session:
        declared = params_of(m)
        given = {k: v for k, v in (params or {}).items() if k in declared}
        return Session(m, given, dma)

    before, after = session(module), session(transformed, dma)
    expected = before.run(function, inputs)
    actual = after.run(function, inputs)

    problems: list[str] = []
    if len(actual) != len(expected):
        problems.append(
            f"@{function} returns {len(actual)} values, expected {len(expected)}"
        )
    for i, (a, e) in enumerate(zip(actual, expected)):
        why = _mismatch(np.asarray(a), np.asarray(e), rtol, atol)
        if why is not None:
            problems.append(f"output {i} {why}")
    for name in sorted(set(before.params) & set(after.params)):
        why = _mismatch(after.params[name], before.params[name], rtol, atol)
        if why is not None:
            problems.append(f"parameter @{name} after the call {why}")
    return problems
