"""Differential testing of the C backend against the interpreter (Csmith-style).

A model goes through a pipeline, then the same path as `edge-opt ... --emit c -o DIR`
(`emit_c_project`: `lower-to-buffers` for host, the project with the kernel runtime);
the project is built on the host with the system C compiler (`make network_test`, or
`network_test_asan` with AddressSanitizer and UBSan), run for some steps, and the loss
of every step (a training pipeline) or the outputs (`infer`), and every parameter after
the steps, are compared with the interpreter's results for the module after the
pipeline (the tensor level: the specification). `check_c_backend` raises
AssertionError on a mismatch, a build error, a crash or a sanitizer report:

    from hypothesis import given
    from edge_opt.testing.c_differential import c_backend_models, check_c_backend

    @given(c_backend_models())
    def test_c_backend(model):
        check_c_backend(model.module, model.inputs, pipeline="train-full{loss=mse}")

A model the pipeline or the backend refuses with a clear error (nothing to train, a
plan that does not fit) raises `UnsupportedModel` instead: not a miscompilation.

Planted bugs (mutation testing of the runtime): `runtime_patch` is called with the
project directory after the project is written and before it is built, so it may edit
`DIR/runtime/*.c`; `RuntimeMutation` is one such edit, as data (it travels in a
reproducer). `write_c_reproducer` writes a directory that replays a failure:
`python -m edge_opt.testing.c_differential DIR`.

Comparisons are relative to the largest magnitude of the expected array (float32 C
sums in other orders than NumPy, and uses its own `exp`/`log`/`erf`, so an element that
is a difference of large terms is only as exact as those terms): an element passes
when `|c - interpreter| <= atol + rtol * max|interpreter|`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.backends.c import host
from edge_opt.backends.c.compile import emit_c_project, test_batch, tested_function
from edge_opt.backends.c.emitter import EmitError
from edge_opt.ir import model_io
from edge_opt.ir.session import Session, get_function, input_names
from edge_opt.support.errors import UserError
from edge_opt.testing.equivalence import apply_passes
from edge_opt.testing.generators import ALL_OPS
from edge_opt.testing.strategies import RandomModel, random_models

C_BACKEND_OPS: tuple[str, ...] = ALL_OPS
"""The ops `c_backend_models` draws by default: those the C backend compiles and the
training pipelines differentiate (every buffer-level kernel op has a C emitter, a
convention test checks it)."""

C_PIPELINES: tuple[str, ...] = (
    "infer",
    "train-full{loss=mse lr=0.05}",
    "train-full{loss=mse optimizer=adam lr=0.01}",
    "train-full{loss=mse lr=0.05 momentum=0.9 weight-decay=0.001}",
)
"""Pipelines a campaign over random models draws from: inference, and training steps
with a loss that fits any output (mean squared error against a random target)."""

DEFAULT_PIPELINE = "train-full{loss=mse lr=0.05}"

RTOL, ATOL = 1e-4, 1e-5
"""Default tolerances of float32 C against the interpreter (see the module docstring)."""

RuntimePatch = Callable[[Path], None]
"""Edits a written C project (its directory) before it is built."""


class UnsupportedModel(Exception):
    """The pipeline or the C backend refused the model with a clear error; a campaign
    skips it (`hypothesis.reject()`)."""


@dataclass(frozen=True)
class RuntimeMutation:
    """A planted bug: replaces the one occurrence of `find` in `runtime/<file>` of the
    project by `replace`. An edit that does not apply (no occurrence, or several) is an
    error, so a mutant never silently becomes the original."""

    file: str
    find: str
    replace: str

    def __call__(self, project: Path) -> None:
        path = project / "runtime" / self.file
        text = path.read_text()
        count = text.count(self.find)
        if count != 1:
            raise ValueError(f"mutation of runtime/{self.file}: {self.find!r} occurs "
                             f"{count} times, expected once")
        path.write_text(text.replace(self.find, self.replace))


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


def c_backend_models(
    *, ops: Sequence[str] = C_BACKEND_OPS, max_ops: int = 4, max_dim: int = 4,
    trainable: str = "all",
) -> st.SearchStrategy[RandomModel]:
    """`random_models` the C backend takes: float32, over `ops`, every parameter
    trainable by default (so a training pipeline has work)."""
    return random_models(ops=ops, max_ops=max_ops, max_dim=max_dim, dtype="f32",
                         trainable=trainable)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Case:
    """A model after its pipeline, the batch of its tested function, and what the
    interpreter computes for `steps` steps on it."""

    module: ModuleOp
    function: str
    batch: dict[str, np.ndarray]
    losses: list[float]
    outputs: list[np.ndarray]
    params: dict[str, np.ndarray]


def _prepare(module: ModuleOp, inputs: Mapping[str, np.ndarray], pipeline: str,
             steps: int) -> _Case:
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    try:
        transformed = apply_passes(pipeline, module)
        function = tested_function(transformed)
    except (PassFailedException, UserError, EmitError) as e:
        raise UnsupportedModel(f"{pipeline}: {model_io.first_line(e)}") from None
    except AssertionError:
        raise
    except Exception as e:
        raise AssertionError(f"{pipeline} crashed: {type(e).__name__}: {e}") from e
    names = input_names(get_function(transformed, function))
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise ValueError(f"inputs {', '.join(unknown)} are not inputs of @{function} "
                         f"after {pipeline} (it takes {', '.join(names)})")
    # Inputs not given (the labels of a training step) are drawn with a fixed seed.
    batch = {**test_batch(transformed, function, None), **inputs}
    session = Session(transformed)
    results = [session.run(function, batch) for _ in range(steps)]
    training = function == "train_step"
    return _Case(
        transformed, function, {k: np.asarray(v) for k, v in batch.items()},
        [float(r[0]) for r in results] if training else [],
        [] if training else [np.asarray(o) for o in results[-1]],
        {k: np.array(v) for k, v in session.params.items()},
    )


def _emit(case: _Case, project: Path, steps: int,
          runtime_patch: RuntimePatch | None) -> None:
    try:
        emit_c_project(case.module, project, case.batch, steps)
    except (PassFailedException, UserError, EmitError) as e:
        raise UnsupportedModel(f"--emit c: {model_io.first_line(e)}") from None
    except Exception as e:
        raise AssertionError(f"--emit c crashed: {type(e).__name__}: {e}") from e
    if runtime_patch is not None:
        runtime_patch(project)


def _run(case: _Case, project: Path, steps: int, sanitize: bool,
         threads: int | None, cache: Path | None) -> host.HostRun:
    binary = "network_test_asan" if sanitize else "network_test"
    try:
        host.build(project, binary, host.default_cache() if cache is None else cache)
    except host.HostError as e:
        raise AssertionError(f"the C project does not build: {e}") from None
    try:
        run = host.run(project, steps, threads, binary, list(case.params),
                       dump_outputs=case.function == "forward")
    except host.HostError as e:
        raise AssertionError(f"the C test failed: {e}") from None
    reports = [m for m in host.SANITIZER_MARKERS if m in run.stderr]
    if sanitize and reports:
        raise AssertionError(f"the sanitizers reported ({', '.join(reports)}):\n"
                             f"{run.stderr[-4000:]}")
    return run


def difference(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL,
               atol: float = ATOL) -> str | None:
    """Why `actual` (C, any shape with the same number of elements) is not `expected`
    within the tolerance (see the module docstring), or None if it is."""
    expected = np.asarray(expected, np.float64)
    if np.size(actual) != expected.size:
        return f"has {np.size(actual)} elements, expected {expected.size}"
    actual = np.asarray(actual, np.float64).reshape(expected.shape)
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    finite = np.isfinite(actual) & np.isfinite(expected)
    with np.errstate(invalid="ignore"):
        error = np.where(same, 0.0, np.where(finite, np.abs(actual - expected), np.inf))
    magnitudes = np.abs(expected[np.isfinite(expected)])
    scale = float(magnitudes.max()) if magnitudes.size else 0.0
    if float(error.max(initial=0.0)) <= atol + rtol * scale:
        return None
    worst = np.unravel_index(np.argmax(error), error.shape) if error.ndim else ()
    relative = float(error.max()) / scale if scale else float("inf")
    at = f" at index {list(map(int, worst))}" if worst else ""
    return (f"max abs error {float(error.max()):.3e}, max rel error {relative:.3e} "
            f"(relative to the largest magnitude, {scale:.3e}; rtol {rtol:g}, atol "
            f"{atol:g}); worst{at}: C {actual[worst].item()!r}, interpreter "
            f"{expected[worst].item()!r}")


def _problems(case: _Case, run: host.HostRun, rtol: float, atol: float) -> list[str]:
    problems = []
    if case.function == "train_step":
        if len(run.losses) != len(case.losses):
            problems.append(f"the C test printed {len(run.losses)} losses, expected "
                            f"{len(case.losses)}")
        for step, (c, expected) in enumerate(zip(run.losses, case.losses), 1):
            why = difference(np.float64(c), np.float64(expected), rtol, atol)
            if why is not None:
                problems.append(f"loss of step {step}: {why}")
    elif len(run.outputs) != len(case.outputs):
        problems.append(f"the C test wrote {len(run.outputs)} outputs, expected "
                        f"{len(case.outputs)}")
    for i, (c, expected) in enumerate(zip(run.outputs, case.outputs)):
        why = difference(c, expected, rtol, atol)
        if why is not None:
            problems.append(f"output {i}: {why}")
    for name, expected in case.params.items():
        if name not in run.params:
            problems.append(f"parameter @{name}: not written by the C test")
            continue
        why = difference(run.params[name], expected, rtol, atol)
        if why is not None:
            problems.append(f"parameter @{name} after the steps: {why}")
    return problems


def check_c_backend(
    module: ModuleOp,
    inputs: Mapping[str, np.ndarray],
    *,
    pipeline: str = DEFAULT_PIPELINE,
    steps: int = 1,
    sanitize: bool = False,
    threads: int | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    runtime_patch: RuntimePatch | None = None,
    workdir: Path | None = None,
    cache: Path | None = None,
) -> None:
    """Checks the C backend on `module` against the interpreter (see the module
    docstring).

    `module` (a model with `@forward`; not changed) goes through `pipeline`; `inputs`
    are arrays of the tested function by name (`@train_step` after a training pipeline,
    else `@forward`); those not given (the labels) are drawn with seed 0. The project is
    built with the host compiler (`sanitize`: `-fsanitize=address,undefined`, any report
    fails) and run for `steps` steps with `threads` threads (default: the SoC's cores);
    the loss of each step or the outputs, and every parameter after the steps, must
    agree within `rtol`/`atol`. `runtime_patch` edits the project before the build
    (a planted bug). The project is written to `workdir/project` (kept) or a temporary
    directory (removed). The runtime's object files are shared across checks through
    `cache` (default `host.default_cache()`; see `host.build`), so a check compiles
    only the network and a runtime file it changed.

    Raises AssertionError naming each value that differs (max abs and rel error), or
    saying that the compiler crashed (an exception that is not a clear refusal), the
    project did not build, the C test crashed or a sanitizer reported;
    UnsupportedModel if the pipeline or the backend refuses the model with a clear
    error (PassFailedException, UserError, EmitError)."""
    case = _prepare(module, inputs, pipeline, steps)
    with tempfile.TemporaryDirectory(prefix="edge-opt-c-") as scratch:
        project = (Path(workdir) if workdir is not None else Path(scratch)) / "project"
        _emit(case, project, steps, runtime_patch)
        try:
            problems = _problems(case, _run(case, project, steps, sanitize, threads,
                                            cache), rtol, atol)
        except AssertionError as e:
            problems = [str(e)]
    if problems:
        where = f"project: {project}\n" if workdir is not None else _NO_WORKDIR
        raise AssertionError(
            f"the C backend disagrees with the interpreter ({pipeline}, {steps} step(s)"
            f"{', sanitized' if sanitize else ''}):\n  " + "\n  ".join(problems)
            + f"\n{where}--- model ---\n{_model_text(module)}"
        )


_NO_WORKDIR = "pass workdir= to keep the project\n"
"""The end of a failure's first part without `workdir` (a campaign's property leaves it
out: the reproducer keeps the project)."""


def c_backend_property(
    pipeline: str = DEFAULT_PIPELINE,
    *,
    steps: int = 1,
    sanitize: bool = False,
    runtime_patch: RuntimePatch | None = None,
    cache: Path | None = None,
) -> Callable[[RandomModel], None]:
    """The property of `edge-opt fuzz --backend c PIPELINE`, for `run_campaign`:
    `check_c_backend` on the model's `@forward` inputs (the labels of a training step
    are drawn), and `hypothesis.reject()` for a model the pipeline or the backend
    refuses (`UnsupportedModel`): not a miscompilation, and not an example."""

    def check(model: RandomModel) -> None:
        try:
            check_c_backend(model.module, model.inputs, pipeline=pipeline, steps=steps,
                            sanitize=sanitize, runtime_patch=runtime_patch, cache=cache)
        except UnsupportedModel:
            reject()
        except AssertionError as e:
            raise AssertionError(str(e).replace(_NO_WORKDIR, "", 1)) from None

    return check


_PRINT_LIMIT = 20_000


def _model_text(module: ModuleOp) -> str:
    text = model_io.print_module(module)
    return text if len(text) <= _PRINT_LIMIT else f"({len(text)} characters, not shown)\n"


# --------------------------------------------------------------------------------------
# Reproducers
# --------------------------------------------------------------------------------------

CASE_FILE = "case.json"


def replay_command(directory: str | os.PathLike[str]) -> str:
    """The command that replays the reproducer in `directory`."""
    return f"python -m edge_opt.testing.c_differential {directory}"


def write_c_reproducer(
    module: ModuleOp,
    inputs: Mapping[str, np.ndarray],
    pipeline: str,
    directory: str | os.PathLike[str],
    *,
    steps: int = 1,
    sanitize: bool = False,
    runtime_patch: RuntimePatch | None = None,
) -> Path:
    """Writes a reproducer of a C backend failure into `directory` (created if
    missing) and returns the path of its README:

        repro.mlir (+ repro.npz)  the model (its large parameter values in the sidecar)
        inputs.npz                the batch of the tested function (with the labels)
        case.json                 pipeline, steps, sanitize, and the runtime mutation
        project/                  the C project as `--emit c` writes it (patched)
        README.md                 what failed and the commands that replay it

    `python -m edge_opt.testing.c_differential DIR` replays the whole check; `make -C
    DIR/project host` builds and runs the C test against the embedded reference. A
    `runtime_patch` that is a `RuntimeMutation` is replayed too; another callable is
    applied to `project/` only."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    case = _prepare(module, inputs, pipeline, steps)
    model_io.save_model(module, directory / "repro.mlir")
    model_io.write_npz(directory / "inputs.npz", case.batch)
    mutation = asdict(runtime_patch) if isinstance(runtime_patch, RuntimeMutation) else None
    record = {"pipeline": pipeline, "steps": steps, "sanitize": sanitize,
              "runtime_mutation": mutation}
    model_io.write_text(directory / CASE_FILE, json.dumps(record, indent=2,
                                                          sort_keys=True) + "\n")
    _emit(case, directory / "project", steps, runtime_patch)
    target = "asan" if sanitize else "host"
    patched = ("" if runtime_patch is None else
               "\nThe project's runtime was patched (a planted bug)"
               + (", and the replay patches it the same way.\n" if mutation else
                  "; the replay does not patch it (the patch is not a RuntimeMutation).\n"))
    readme = directory / "README.md"
    model_io.write_text(readme, (
        f"# C backend reproducer\n\nReplay: `{replay_command(directory)}`\n\n"
        f"`repro.mlir` through `{pipeline}`, {steps} step(s) on `inputs.npz`, compared "
        "with the interpreter (loss or outputs, and every parameter).\n"
        f"{patched}\nThe C test alone (checks the loss or outputs against the "
        f"interpreter's reference embedded in the project):\n\n"
        f"    make -C {directory / 'project'} {target}\n\n"
        "The project again from the model:\n\n"
        f"    edge-opt {directory / 'repro.mlir'} --pipeline '{pipeline}' --emit c "
        f"-o {directory / 'project'} --steps {steps} --input {directory / 'inputs.npz'} "
        "--force\n"
    ))
    return readme


def replay(directory: str | os.PathLike[str], workdir: Path | None = None) -> None:
    """Runs `check_c_backend` on the reproducer in `directory` (see
    `write_c_reproducer`); raises what it raises."""
    directory = Path(directory)
    record = json.loads((directory / CASE_FILE).read_text())
    mutation = record.get("runtime_mutation")
    check_c_backend(
        model_io.load_model(directory / "repro.mlir"),
        model_io.read_npz(directory / "inputs.npz"),
        pipeline=record["pipeline"], steps=record["steps"], sanitize=record["sanitize"],
        runtime_patch=RuntimeMutation(**mutation) if mutation else None,
        workdir=workdir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_opt.testing.c_differential",
        description="Replays a C backend reproducer written by write_c_reproducer.")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if not (args.directory / CASE_FILE).is_file():
        print(f"error: {args.directory} is not a reproducer (it has no {CASE_FILE}); give "
              "a directory written by write_c_reproducer", file=sys.stderr)
        return 2
    try:
        replay(args.directory)
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except (UnsupportedModel, UserError, OSError, KeyError, ValueError) as e:
        print(f"error: {args.directory}: {model_io.first_line(e)}", file=sys.stderr)
        return 2
    print("OK: the C backend agrees with the interpreter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
