"""The `edge-opt` command line.

    edge-opt model.mlir -p canonicalize,cse -o out.mlir      # like xdsl-opt / mlir-opt
    edge-opt model.mlir --pipeline "infer" -o out.mlir       # a named pipeline
    edge-opt import model.onnx -o model.mlir                 # writes model.mlir + model.npz
    edge-opt run model.mlir --input x.npz -o outputs.npz     # interprets @forward
    edge-opt run model.mlir --pipeline train-full --function train_step \
        --input data.npz --steps 100 --save-params trained.npz
    edge-opt report model.mlir --pipeline train-last --json  # params, bytes, FLOPs
    edge-opt --list-pipelines

The optimizer is xDSL's `xDSLOptMain` with our registries; it reads the `.npz` beside an
input `.mlir` and writes one beside an output `.mlir`. Every user-fixable problem ends in
one `edge-opt: error: ...` line and exit status 1, never a traceback; every output file is
written to a temporary file and renamed, so an error leaves no half-written output.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import IO

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import InterpretationError
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.arg_spec import parse_spec
from xdsl.utils.exceptions import (
    ArgSpecParseError,
    DiagnosticException,
    ParseError,
    PassFailedException,
    VerifyException,
)
from xdsl.xdsl_opt_main import xDSLOptMain

from edge_opt.backends.c.target import CTarget
from edge_opt.dialects import nn
from edge_opt.dialects.kernel import MEMORY_ATTR
from edge_opt.frontends.onnx import OnnxImportWarning, import_onnx
from edge_opt.ir import model_io
from edge_opt.ir.context import all_dialects
from edge_opt.passes.lower_to_buffers import (
    LowerToBuffersPipeline,
    check_plan,
    choose_weights,
)
from edge_opt.passes.registry import available_passes, expand, named_pipelines
from edge_opt.support.errors import ModelFileError, UserError
from edge_opt.support.socs import get_soc
from edge_opt.tools.commands import (
    SUBCOMMANDS as BASIC_SUBCOMMANDS,
)
from edge_opt.tools.commands import (
    add_pipeline_arguments,
    add_plugin_argument,
    add_soc_arguments,
    analyse,
    print_reports,
    stage_passes,
    stages_spec,
)
from edge_opt.tools.fuzz import fuzz_command
from edge_opt.tools.plugins import load_plugins, split_plugin_arguments

PROG = "edge-opt"

SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int | None]] = {
    **BASIC_SUBCOMMANDS,
    "fuzz": fuzz_command,
}
"""`edge-opt NAME ...`: each returns its exit status (None for 0)."""


class EdgeOptMain(xDSLOptMain):
    """xDSL's optimizer driver with edge-opt's dialects, passes, named pipelines and the
    `.npz` sidecar handling."""

    input_values: dict[str, np.ndarray]
    _declared: set[str]
    """The parameters of the output module(s): the names its sidecar may hold."""

    def __init__(self, args: Sequence[str] | None = None):
        self.input_values = {}
        self._declared = set()
        super().__init__(description="edge-opt: compile small neural networks for "
                         "training on extreme-edge RISC-V SoCs", args=args)

    def register_all_dialects(self) -> None:
        super().register_all_dialects()
        for name, factory in all_dialects().items():
            if name not in self.ctx.registered_dialect_names:
                self.ctx.register_dialect(name, factory)

    def register_all_passes(self) -> None:
        for name, factory in available_passes().items():
            self.register_pass(name, factory)

    def register_all_targets(self) -> None:
        super().register_all_targets()
        self.available_targets[CTarget.name] = lambda: CTarget

    def register_all_frontends(self) -> None:
        super().register_all_frontends()

        def parse_onnx(stream: IO[bytes]) -> ModuleOp:
            return import_onnx(stream.read())

        self.available_frontends["onnx"] = parse_onnx

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.prog = PROG
        # Our -p replaces xDSL's (repeatable, and ordered with --pipeline). argparse
        # has no public way to replace an option: let the later definition win (the
        # option group keeps its own copy of the setting).
        for container in (arg_parser, arg_parser._optionals):
            container.conflict_handler = "resolve"
        add_pipeline_arguments(arg_parser)
        add_plugin_argument(arg_parser)
        arg_parser.add_argument(
            "--print-ir-after-all",
            action="store_true",
            help="print the IR after every pass (named pipelines are expanded)",
        )
        arg_parser.add_argument(
            "--params",
            metavar="NPZ",
            help="parameter values (default: the .npz beside the input .mlir)",
        )
        arg_parser.add_argument(
            "--emit",
            choices=["mlir", "c"],
            help="mlir (default): the IR; c: a C project in the -o directory (the same "
            "as -t c)",
        )
        add_soc_arguments(arg_parser, "with -t c or --report: ")
        arg_parser.add_argument(
            "--input",
            metavar="NPZ",
            help="with -t c: the batch the generated test runs (arrays named like "
            "the inputs, and labels); default a seeded random batch",
        )
        arg_parser.add_argument(
            "--force",
            action="store_true",
            help="with -t c: replace the -o directory even if it holds files edge-opt did "
            "not write (never one of the inputs)",
        )
        arg_parser.add_argument(
            "--steps",
            type=int,
            help="with -t c: steps of the generated test (default 3)",
        )
        arg_parser.add_argument(
            "--report",
            action="store_true",
            help="print the report of the module after the passes (as `edge-opt "
            "report`) instead of the IR",
        )
        arg_parser.add_argument(
            "--json", action="store_true", help="with --report: JSON on stdout"
        )
        arg_parser.add_argument(
            "--memory-map", metavar="PNG", help="draw the memory plan (implies --report)"
        )
        arg_parser.add_argument(
            "--list-pipelines", action="store_true", help="list the named pipelines"
        )
        arg_parser.add_argument(
            "--list-passes", action="store_true", help="list the available passes"
        )

    def setup_pipeline(self) -> None:
        passes = stage_passes(self.args.stages, self.available_passes)
        self.pipeline = PassPipeline(expand(passes), self._between_passes)

    def _between_passes(
        self, previous: ModulePass | None, module: ModuleOp, following: ModulePass | None
    ) -> None:
        if not self.args.disable_verify:
            try:
                module.verify()
            except VerifyException as e:
                after = f"after pass '{previous.name}'" if previous else "on input"
                raise VerifyException(f"invalid IR {after}: {e}") from None
        if previous is not None and self.args.print_ir_after_all:
            stripped, _ = model_io.detach_values(module)
            spec = str(previous.pipeline_pass_spec())
            sys.stdout.write(f"// -----// IR after {spec} //----- //\n")
            sys.stdout.write(model_io.print_module(stripped))

    def _read_chunks(self) -> tuple[list[tuple[str, int]], str]:
        """The input text, split at `// -----` if asked, with line offsets."""
        name = self.args.input_file
        if name is None:
            data = sys.stdin.buffer.read()
            extension = "mlir"
        else:
            try:
                data = Path(name).read_bytes()
            except FileNotFoundError:
                raise ModelFileError(f"{name}: no such file") from None
            except OSError as e:
                raise ModelFileError(f"{name}: cannot read ({e.strerror})") from None
            extension = Path(name).suffix.lstrip(".") or "mlir"
        if self.args.frontend:
            extension = self.args.frontend
        if extension not in self.available_frontends:
            raise UserError(
                f"{name}: unknown input format '.{extension}' (expected one of "
                f"{', '.join('.' + e for e in self.available_frontends)}; use -f)"
            )
        if extension != "mlir":
            return [(data, 0)], extension  # type: ignore[list-item]
        text = data.decode("utf-8", errors="replace")
        if not self.args.split_input_file:
            return [(text, 0)], extension
        chunks, offset = [], 0
        for chunk in text.split("// -----"):
            chunks.append((chunk, offset))
            offset += chunk.count("\n")
        return chunks, extension

    def _parse(self, chunk: str | bytes, extension: str, offset: int) -> ModuleOp:
        if extension == "onnx":
            # External data lives beside the model, not in the current directory.
            where = Path(self.args.input_file).parent if self.args.input_file else None
            return import_onnx(chunk, base_dir=where)  # type: ignore[arg-type]
        # Pad with newlines so that positions in a split chunk are file positions.
        text = "\n" * offset + chunk  # type: ignore[operator]
        parser = model_io.LocatingParser(self.ctx, text, self.get_input_name())
        module = parser.parse_module(not self.args.no_implicit_module)
        self._attach_sidecar(module)
        if not self.args.disable_verify:
            try:
                model_io.verify_module(module, self.get_input_name(), parser.op_spans)
            except ModelFileError as e:
                raise VerifyException(str(e)) from None
        return module

    def _attach_sidecar(self, module: ModuleOp) -> None:
        if self.args.params:
            npz: Path | None = Path(self.args.params)
            if not npz.exists():  # type: ignore[union-attr]
                raise ModelFileError(f"{npz}: no such file")
        elif self.args.input_file:
            npz = model_io.sidecar_path(self.args.input_file)
        else:
            npz = None
        if npz is None or not npz.exists():
            return
        values = model_io.read_npz(npz)
        if self.args.params:
            # Explicit values may cover more than this module (e.g. a whole trained
            # state); the implicit sidecar must match its model exactly.
            declared = {
                op.sym_name.data for op in module.ops if isinstance(op, nn.ParamOp)
            }
            values = {k: v for k, v in values.items() if k in declared}
        self.input_values = values
        model_io.attach_values(module, values, str(npz), sidecar=not self.args.params)

    def _check_output(self, emits_c: bool) -> None:
        """Refuses an output that would overwrite an input or cannot be written, before
        any work is done. Rewriting the input model in place (`-o` the input .mlir) is
        allowed: the user names it."""
        if self.args.memory_map:
            model_io.check_output(self.args.memory_map, [self.args.input_file],
                                  "--memory-map", suffix=".png")
        output = self.args.output_file
        if output is None or emits_c or self.args.report:
            return
        in_place = self.args.input_file is not None and model_io.same_file(
            output, self.args.input_file
        )
        inputs = [self.args.params] if in_place else self._input_files()
        model_io.check_output(output, inputs, model=self.args.target == "mlir")

    def _c_target(self) -> CTarget | None:
        """The C target of `-t c{...}` or `--emit c`, with `-o`, `--steps` and `--input`
        as its options; None if the output is not C."""
        spec = parse_spec(self.args.target)
        if self.args.emit == "c" and spec.name not in ("mlir", "c"):
            raise UserError(f"--emit c and -t {spec.name} ask for two outputs: give one")
        if spec.name != "c" and self.args.emit != "c":
            return None
        try:
            target = CTarget.from_spec(spec) if spec.name == "c" else CTarget()
        except ValueError as e:
            raise UserError(f"-t {self.args.target}: {e}") from None
        flags = {"dir": self.args.output_file, "steps": self.args.steps,
                 "input": self.args.input, "force": self.args.force or None}
        given = spec.parameters if spec.name == "c" else {}
        for option, value in flags.items():
            if value is None:
                continue
            if option in given and getattr(target, option) != value:
                flag = "-o" if option == "dir" else f"--{option}"
                raise UserError(f"{flag} {value} contradicts -t c{{{option}=...}}: give one")
            target = CTarget(**{**vars(target), option: value})
        if target.steps < 1:
            raise UserError(f"the C test needs at least one step, got {target.steps}")
        inputs = tuple(str(i) for i in self._input_files() if i)
        return CTarget(**{**vars(target), "inputs": inputs})

    def _input_files(self) -> list[str | os.PathLike[str] | None]:
        """What an output must not overwrite: `--params`, the input model, its sidecar."""
        if self.args.input_file is None:
            return [self.args.params]
        return [self.args.params, self.args.input_file,
                model_io.sidecar_path(self.args.input_file)]

    def _check_flags(self, c_target: CTarget | None) -> None:
        """A flag that cannot take effect is an error, never ignored."""
        report = bool(self.args.report or self.args.memory_map)
        rules = (
            (("--steps", "--input", "--force"), c_target is not None, "-t c (--emit c)"),
            (("--soc", "--weights"), c_target is not None or report,
             "-t c (--emit c) or --report"),
            (("--json",), report, "--report"),
        )
        for flags, applies, where in rules:
            given = [f for f in flags if getattr(self.args, f[2:]) not in (None, False)]
            if given and not applies:
                verb, them = ("take", "them") if len(given) > 1 else ("takes", "it")
                raise UserError(f"{' and '.join(given)} only {verb} effect with {where}: "
                                f"drop {them} or add that output")

    def run(self) -> None:
        if self.args.list_pipelines:
            print_pipelines(sys.stdout)
            return
        if self.args.list_passes:
            for name in sorted(self.available_passes):
                print(name)
            return
        c_target = self._c_target()
        self._check_flags(c_target)
        if self.args.soc is not None:
            get_soc(self.args.soc)  # an unknown SoC or a malformed file: before any work
        self._check_output(c_target is not None)
        if c_target is not None and not (self.args.report or self.args.memory_map):
            if c_target.dir is None:
                raise UserError("-t c (--emit c) writes a project directory: give it with "
                                "-o DIR")
            c_target.check()
        chunks, extension = self._read_chunks()
        if self.args.report or self.args.memory_map:
            if c_target is not None:
                raise UserError("--report and -t c (--emit c) ask for two outputs: give one")
            self._report(chunks, extension)
            return
        if c_target is not None:
            self._emit_c(chunks, extension, c_target)
            return
        outputs: list[str] = []
        sidecar: dict[str, np.ndarray] = {}
        for chunk, offset in chunks:
            try:
                module = self._parse(chunk, extension, offset)
                self.pipeline.apply(self.ctx, module)
            except ParseError as e:
                if self.args.parsing_diagnostics:
                    outputs.append(f"{e}\n")
                    continue
                raise
            except DiagnosticException as e:
                if self.args.verify_diagnostics:
                    outputs.append(f"{e}\n")
                    continue
                raise
            text, values = self._render(module)
            self._declared |= model_io.param_names(module)
            outputs.append(text)
            sidecar.update(values)
        self._write_output("// -----\n".join(outputs), sidecar)

    def _report(self, chunks: list[tuple[str, int]], extension: str) -> None:
        reports = []
        for chunk, offset in chunks:
            module = self._parse(chunk, extension, offset)
            self.pipeline.apply(self.ctx, module)
            reports.append(analyse(module, stages_spec(self.args.stages), self.args.soc,
                                   self.args.weights, self.args.memory_map))
        print_reports(reports, self.args.json)

    def _emit_c(self, chunks: list[tuple[str, int]], extension: str, target: CTarget) -> None:
        if len(chunks) != 1:
            raise UserError("-t c (--emit c) takes one module (no --split-input-file)")
        chunk, offset = chunks[0]
        module = self._parse(chunk, extension, offset)
        self.pipeline.apply(self.ctx, module)
        if MEMORY_ATTR in module.attributes:
            check_plan(module, self.args.soc, self.args.weights)
        else:
            soc, weights = self.args.soc or "host", self.args.weights
            if weights is None:
                weights, note = choose_weights(module, soc)
                if note is not None:
                    print(f"{PROG}: note: {note}", file=sys.stderr)
            stage = LowerToBuffersPipeline(soc=soc, weights=weights)  # type: ignore[arg-type]
            PassPipeline(expand([stage]), self._between_passes).apply(self.ctx, module)
        target.emit(self.ctx, module, sys.stdout)

    def _render(self, module: ModuleOp) -> tuple[str, dict[str, np.ndarray]]:
        if self.args.target == "mlir":
            stripped, values = model_io.detach_values(module)
            return model_io.print_module(stripped, self.args.print_op_generic), values
        return self.output_resulting_program(module), {}

    def _write_output(self, text: str, values: dict[str, np.ndarray]) -> None:
        output = self.args.output_file
        if output is None:
            sys.stdout.write(text)
            changed = [
                k
                for k, v in values.items()
                if k not in self.input_values or not np.array_equal(v, self.input_values[k])
            ]
            if changed:
                print(
                    f"{PROG}: note: {len(changed)} parameter value(s) are not printed; "
                    "use -o FILE.mlir to write them to FILE.npz",
                    file=sys.stderr,
                )
            return
        if self.args.target == "mlir":
            declared = set(values) | self._declared
            model_io.write_model(output, text, values, declared)
        else:
            model_io.write_text(output, text)


def print_pipelines(stream: IO[str]) -> None:
    """Each named pipeline with its options and defaults, as a spec that parses back."""
    for name, factory in sorted(named_pipelines().items()):
        cls = factory()
        options = " ".join(
            f"{f.name.replace('_', '-')}={_option_text(f.default)}"
            for f in fields(cls)
            if f.default is not None
        )
        stream.write(f"{name}{'{' + options + '}' if options else ''}\n")
        stream.write(f"    {cls.description}\n")


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        # The pass-spec lexer reads no exponents: 1e-08 must be written 0.00000001.
        text = f"{value:.12f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, str) and not re.fullmatch(r"[\w.-]+", value):
        return f'"{value}"'  # e.g. a regular expression: quoted, so it parses back
    return str(value)


def _error_message(error: BaseException) -> str:
    if isinstance(error, ParseError):
        return f"parse error: {error}"
    if isinstance(error, VerifyException):
        return str(error) if str(error).startswith("invalid IR") else (
            f"invalid IR: {model_io.first_line(error)}"
        )
    if isinstance(error, PassFailedException):
        return f"pass failed: {error}"
    if isinstance(error, InterpretationError):
        return f"interpretation failed: {error}"
    if isinstance(error, ArgSpecParseError):
        return f"bad pass pipeline: {error}"
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message, category, *args, **kwargs) -> None:
            """Our own warnings (an ONNX import's shared parameters) as one line."""
            if issubclass(category, OnnxImportWarning):
                print(f"{PROG}: warning: {message}", file=sys.stderr)
            else:
                previous(message, category, *args, **kwargs)

        warnings.showwarning = show
        return _main(argv)


def _main(argv: list[str]) -> int:
    try:
        plugin_files, argv = split_plugin_arguments(argv)
        with load_plugins(plugin_files).activated():
            return _dispatch(argv)
    except (
        UserError,
        ParseError,
        VerifyException,
        PassFailedException,
        InterpretationError,
        ArgSpecParseError,
        DiagnosticException,
    ) as e:
        print(f"{PROG}: error: {_error_message(e)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # A bug of ours: say so, in one line unless asked.
        if os.environ.get("EDGE_OPT_DEBUG"):
            raise
        print(
            f"{PROG}: internal error: {type(e).__name__}: {e} (this is a bug in "
            "edge-opt; rerun with EDGE_OPT_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
        )
        return 70


def _dispatch(argv: list[str]) -> int:
    """Runs a subcommand (which may return an exit status) or the optimizer."""
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:]) or 0
    if argv and argv[0] == "--list-pipelines":
        print_pipelines(sys.stdout)
    else:
        EdgeOptMain(argv).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
