"""The `edge-opt` subcommands: `import`, `run`, `report` and `profile`.

Each takes its own arguments and raises `UserError` (or an xDSL diagnostic) for anything
the user can fix; `edge_opt.tools.driver.main` turns those into one error line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import VerifyException

from edge_opt.backends.c.emitter import EmitError
from edge_opt.backends.c.profile import format_profile, profile_step
from edge_opt.dialects.kernel import planned_soc
from edge_opt.frontends.onnx import import_onnx_with_summary
from edge_opt.frontends.onnx.initializers import format_summary
from edge_opt.ir import model_io
from edge_opt.ir.context import make_context
from edge_opt.ir.dma_report import (
    dma_figures,
    format_dma,
    format_schedules,
    schedule_figures,
)
from edge_opt.ir.memory_report import (
    draw_memory_map,
    format_memory,
    memory_figures,
)
from edge_opt.ir.report import build_report, format_comparison, format_report
from edge_opt.ir.session import (
    Session,
    get_function,
    input_names,
    output_names,
    params_of,
)
from edge_opt.passes.lower_to_buffers import WEIGHTS_NOTE_ATTR, lower_to_buffers
from edge_opt.passes.registry import expand, named_pipelines, parse_pipeline
from edge_opt.support.errors import ModelFileError, UserError
from edge_opt.support.socs import get_soc, soc_names

PROG = "edge-opt"


class _Stage(argparse.Action):
    """Records `-p` and `--pipeline` values in `namespace.stages`, in command-line
    order: `--pipeline train-full -p bufferize` trains, then bufferizes."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        stages = list(getattr(namespace, "stages", None) or [])
        stages.append((self.dest, values))
        namespace.stages = stages


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """`-p PASSES` and `--pipeline NAME{options}`, both repeatable, applied in the order
    given (see `stage_passes`)."""
    parser.set_defaults(stages=[])
    parser.add_argument(
        "-p", "--passes", action=_Stage, metavar="PASSES",
        help="comma-separated passes (see --list-passes); repeatable",
    )
    parser.add_argument(
        "--pipeline", action=_Stage, metavar="NAME{options}",
        help="a named pipeline (see --list-pipelines); repeatable. -p and --pipeline "
        "apply in the order given",
    )


def add_plugin_argument(parser: argparse.ArgumentParser) -> None:
    """`--load-plugin FILE`, for the help text: the driver takes every `--load-plugin`
    out of the command line before parsing (see `edge_opt.tools.plugins`)."""
    parser.add_argument(
        "--load-plugin", action="append", default=[], metavar="FILE",
        help="load a plugin file (its passes, pipelines and dialects); repeatable",
    )


def stage_passes(
    stages: Sequence[tuple[str, str]], passes: dict | None = None
) -> list[ModulePass]:
    """The passes of `-p`/`--pipeline` stages, in order; `--pipeline` accepts named
    pipelines only, `-p` any pass (named pipelines included)."""
    result: list[ModulePass] = []
    for kind, spec in stages:
        registry = named_pipelines() if kind == "pipeline" else passes
        result.extend(parse_pipeline(spec, registry))
    return result


def stages_spec(stages: Sequence[tuple[str, str]]) -> str | None:
    """The stages as one pipeline spec (for reports), or None."""
    specs = [spec for _, spec in stages if spec]
    return ",".join(specs) if specs else None


def apply_pipeline(module: ModuleOp, stages: Sequence[tuple[str, str]]) -> None:
    """Applies the stages' passes, verifying after every pass."""
    ctx = make_context()
    for p in expand(stage_passes(stages)):
        p.apply(ctx, module)
        try:
            module.verify()
        except VerifyException as e:
            raise VerifyException(
                f"invalid IR after pass '{p.name}': {model_io.first_line(e)}"
            ) from None


# --------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------


def _subcommand_parser(name: str, model_help: str, description: str
                       ) -> argparse.ArgumentParser:
    """The parser of `edge-opt NAME MODEL ...`."""
    parser = argparse.ArgumentParser(prog=f"{PROG} {name}", description=description)
    parser.add_argument("model", help=model_help)
    return parser


def _import_parser() -> argparse.ArgumentParser:
    parser = _subcommand_parser(
        "import", "the .onnx file",
        "Convert an ONNX model to edge-opt MLIR (model.mlir + model.npz), "
        "and say what each initializer became (trainable or frozen parameter, constant).",
    )
    parser.add_argument(
        "-o", "--output", help="output .mlir (default: the model's name with .mlir)"
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="static shape for an input with symbolic dimensions",
    )
    shared = parser.add_mutually_exclusive_group()
    shared.add_argument(
        "--untie-shared", dest="untie", action="store_const", const="all",
        default="merged",
        help="give every layer its own copy of an initializer several layers read "
        "(default: only the exporter's Identity merges are untied)",
    )
    shared.add_argument(
        "--keep-shared", dest="untie", action="store_const", const="none",
        help="keep every shared initializer one parameter, as in the file",
    )
    parser.add_argument(
        "--trainable", metavar="REGEX",
        help="initializers whose whole name matches train, whatever the rule decides",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="list every initializer's decision"
    )
    return parser


def import_command(argv: Sequence[str]) -> None:
    args = _import_parser().parse_args(argv)

    shapes: dict[str, tuple[int, ...]] = {}
    for item in args.input_shape:
        name, _, dims = item.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise UserError(
                f"--input-shape {item}: expected NAME=D0,D1,... with integer sizes"
            ) from None
    output = Path(args.output) if args.output else Path(args.model).with_suffix(".mlir")
    if not Path(args.model).exists():
        raise ModelFileError(f"{args.model}: no such file")
    model_io.check_output(output, [args.model], model=True)
    module, decisions = import_onnx_with_summary(
        args.model, input_shapes=shapes or None, untie=args.untie,
        trainable=args.trainable,
    )
    sidecar = model_io.save_model(module, output)
    params = params_of(module)
    count = sum(p.type.element_count() for p in params.values())
    print(
        f"wrote {output}"
        + (f" and {sidecar}" if sidecar else "")
        + f" ({len(params)} parameters, {count:,} values)"
    )
    sys.stdout.write(format_summary(decisions, args.verbose))
    for message in decisions.warnings:
        print(f"{PROG}: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------


def run_command(argv: Sequence[str]) -> None:
    parser = _subcommand_parser(
        "run", "the .mlir file (its .npz is read too)",
        "Interpret a function of a model on arrays from an .npz file, "
        "optionally after a pipeline and for several steps (training).",
    )
    parser.add_argument(
        "--input",
        metavar="NPZ",
        help="arrays named like the function's inputs; others are ignored",
    )
    parser.add_argument("--function", default="forward", help="default: forward")
    parser.add_argument(
        "--params", metavar="NPZ", help="parameter values (default: the model's .npz)"
    )
    add_pipeline_arguments(parser)
    parser.add_argument(
        "--steps", type=int, default=1, help="run the function this many times (the "
        "parameter state carries over: training steps)"
    )
    parser.add_argument(
        "--save-params", metavar="NPZ", help="write every parameter afterwards"
    )
    parser.add_argument("-o", "--output", metavar="NPZ", help="write the last outputs")
    args = parser.parse_args(argv)
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    inputs = [args.model, args.params, args.input, model_io.sidecar_path(args.model)]
    for option, path in (("-o", args.output), ("--save-params", args.save_params)):
        if path is not None:
            model_io.check_output(path, inputs, option, suffix=".npz")

    module = model_io.load_model(args.model, args.params)
    apply_pipeline(module, args.stages)
    function = get_function(module, args.function)
    arrays = model_io.read_npz(args.input) if args.input else {}
    wanted = input_names(function)
    unused = sorted(set(arrays) - set(wanted))
    if unused:
        print(f"note: @{args.function} does not take {', '.join(unused)}; ignored")
    inputs = {k: v for k, v in arrays.items() if k in wanted}
    session = Session(module)
    names = output_names(function)
    for step in range(1, args.steps + 1):
        results = session.run(args.function, inputs)
        scalars = all(r.ndim == 0 for r in results)
        if args.steps > 1 or scalars:
            described = (_scalar_or_shape(n, v) for n, v in zip(names, results))
            print(f"step {step} " + " ".join(described))
    if args.steps == 1 and not scalars:
        for name, value in zip(names, results):
            print(summary(name, value))
    if args.output:
        model_io.write_npz(args.output, dict(zip(names, results)))
        print(f"wrote {args.output}")
    if args.save_params:
        model_io.write_npz(args.save_params, dict(session.params))
        print(f"wrote {args.save_params} ({len(session.params)} parameters)")


def _scalar_or_shape(name: str, value: np.ndarray) -> str:
    if value.ndim == 0:
        return f"{name} {float(value):.6g}"
    return f"{name} {value.dtype}[{'x'.join(map(str, value.shape))}]"


def summary(name: str, value: np.ndarray) -> str:
    shape = "x".join(str(d) for d in value.shape) or "scalar"
    text = f"{name}: {value.dtype}[{shape}]"
    if value.size and np.issubdtype(value.dtype, np.number):
        text += f" min {value.min():.6g} max {value.max():.6g} mean {value.mean():.6g}"
    if value.size <= 16:
        text += f" = {np.array2string(value.reshape(-1), precision=6, separator=', ')}"
    return text


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------


def add_soc_arguments(parser: argparse.ArgumentParser, what: str = "") -> None:
    """`--soc` and `--weights`: how a module that is not at the buffer level yet is
    lowered (`lower-to-buffers{soc weights}`); with a planned module they may only
    repeat its plan."""
    parser.add_argument(
        "--soc",
        metavar="SOC",
        help=f"{what}the SoC whose memory to plan for: {', '.join(soc_names())} "
        "(default host), or the path of a SoC .toml file (see docs/architecture.md)",
    )
    parser.add_argument(
        "--weights", choices=["L1", "L2", "L3"],
        help=f"{what}memory level of parameters and optimizer state (default L2)",
    )


def report_command(argv: Sequence[str]) -> None:
    parser = _subcommand_parser(
        "report", "the .mlir file (its .npz is read too)",
        "Parameters, gradient and optimizer bytes, FLOPs and the planned "
        "memory of a training strategy, per parameter and in total.",
    )
    add_pipeline_arguments(parser)
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="PIPELINE",
        help="report several pipelines side by side (each on a fresh copy)",
    )
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    add_soc_arguments(parser)
    parser.add_argument(
        "--memory-map", metavar="PNG", help="draw the memory plan of the training step"
    )
    args = parser.parse_args(argv)

    if args.soc is not None:
        get_soc(args.soc)  # an unknown SoC is an error before any work
    if args.memory_map:
        model_io.check_output(args.memory_map, [args.model, model_io.sidecar_path(
            args.model)], "--memory-map", suffix=".png")
    module = model_io.load_model(args.model)
    specs = args.compare or [None]
    reports = []
    for spec in specs:
        copy = module.clone() if args.compare else module
        stages = [("pipeline", spec)] if spec is not None else args.stages
        apply_pipeline(copy, stages)
        reports.append(
            analyse(copy, spec or stages_spec(args.stages), args.soc, args.weights,
                    None if args.compare else args.memory_map)
        )
    print_reports(reports, args.json, compare=bool(args.compare))


def analyse(module: ModuleOp, pipeline: str | None, soc: str | None, weights: str | None,
            memory_map: str | None = None):
    """The report of a module after its pipeline, with the memory plan of a lowered
    copy (`lower-to-buffers{soc weights check=false}`; the module itself if it is
    planned already) and its picture when `memory_map` names a PNG."""
    report = build_report(module, pipeline)
    planned = lower_to_buffers(module, soc, weights, check=False)
    soc = planned_soc(planned) or "host"
    report.extra["memory"] = memory_figures(planned, get_soc(soc))
    report.extra["soc"] = soc
    dma = dma_figures(planned, get_soc(soc))
    if dma:
        report.extra["dma"] = dma
        report.extra["schedules"] = schedule_figures(planned)
    note = planned.attributes.get(WEIGHTS_NOTE_ATTR)
    if isinstance(note, StringAttr):
        report.extra["weights_note"] = note.data
    if memory_map:
        function = "train_step" if _has_function(planned, "train_step") else "forward"
        draw_memory_map(planned, memory_map, function, _drawn_levels(planned))
        print(f"wrote {memory_map}", file=sys.stderr)
    return report


def print_reports(reports: list, as_json: bool, compare: bool = False) -> None:
    if as_json:
        data = (
            {r.pipeline: r.to_json() for r in reports} if compare else reports[0].to_json()
        )
        print(json.dumps(data, indent=2))
    elif compare:
        sys.stdout.write(format_comparison(reports))
    else:
        report = reports[0]
        sys.stdout.write(format_report(report))
        soc = get_soc(report.extra["soc"])
        sys.stdout.write("\n" + format_memory(report.extra["memory"], soc))
        extra = format_dma(report.extra.get("dma", {}), report.extra.get("weights_note"))
        extra += format_schedules(report.extra.get("schedules", {}))
        if extra:
            sys.stdout.write("\n" + extra)


def _has_function(module: ModuleOp, name: str) -> bool:
    return any(isinstance(o, func.FuncOp) and o.sym_name.data == name for o in module.ops)


def _drawn_levels(module: ModuleOp) -> list[str]:
    """The level with the largest arena, and L1 above it when kernels run on L1 tiles."""
    figures = memory_figures(module)
    if not figures:
        return ["L2"]
    main = max(figures, key=lambda level: figures[level]["peak_bytes"])
    tiled = main != "L1" and figures.get("L1", {}).get("peak_bytes", 0) > 0
    return ["L1", main] if tiled else [main]


# --------------------------------------------------------------------------------------
# profile
# --------------------------------------------------------------------------------------


def profile_command(argv: Sequence[str]) -> None:
    parser = _subcommand_parser(
        "profile", "the .mlir file (its .npz is read too)",
        "Build one step of the model's C for RV32 + CORE-V, run it on emulated cores, "
        "check its results against the interpreter and count the executed instructions "
        "per core and per kernel call (exact), with FLOPs and an estimated cycle count.",
    )
    add_pipeline_arguments(parser)
    add_soc_arguments(parser)
    parser.add_argument("--cores", type=int, help="emulated cores (default: the SoC's)")
    parser.add_argument("--input", metavar="NPZ",
                        help="the step's inputs by name (default: drawn with seed 0)")
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    args = parser.parse_args(argv)
    if args.soc is not None:
        get_soc(args.soc)
    if args.cores is not None and not 1 <= args.cores <= 8:
        raise UserError(f"--cores must be 1 to 8, got {args.cores}")
    module = model_io.load_model(args.model)
    apply_pipeline(module, args.stages)
    arrays = model_io.read_npz(args.input) if args.input else None
    try:
        profile = profile_step(module, args.soc, args.cores, arrays, args.weights,
                               Path(args.model).stem, _progress())
    except EmitError as e:
        raise UserError(str(e)) from None
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K")
    if args.json:
        print(json.dumps(profile.to_json(), indent=2))
    else:
        print(format_profile(profile))


def _progress() -> Callable[[int], None] | None:
    """A line on a terminal's stderr with the instructions emulated so far."""
    if not sys.stderr.isatty():
        return None

    def show(executed: int) -> None:
        sys.stderr.write(f"\remulating: {executed / 1e6:,.1f} M instructions")
        sys.stderr.flush()

    return show


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int | None]] = {
    "import": import_command,
    "run": run_command,
    "report": report_command,
    "profile": profile_command,
}
"""The subcommands by name; `edge_opt.tools.driver` adds `fuzz`. A subcommand returns
its exit status, or None for 0."""
