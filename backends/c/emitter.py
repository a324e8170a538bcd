"""Prints a planned, buffer-level module as C (`network.h`, `network.c`).

Printer state lives in `FunctionContext` (one per function) and `ModulePrinter`; each
kernel op is printed by its entry in `EMITTERS` (`edge_opt.backends.c.kernels.*`), a
table from op class to a function that writes one runtime call. An op without an entry
raises: the printer never skips what it does not know.

The generated code follows the PULP model: a function's body runs on every core of the
team (`edge_fork`); each runtime kernel splits its work by core id and ends with a
barrier. Buffers are fixed addresses: `kernel.alloc`s are pointers into one static arena
per memory level at their planned offsets, parameters are static arrays placed in their
level's section (`PI_L2`, ...) and filled by `init()` from a binary blob
(`params_blob`), constants are `static const` arrays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DictionaryAttr,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
)
from xdsl.ir import Operation, SSAValue

from edge_opt.dialects import kernel, nn
from edge_opt.dialects.kernel import LEVEL_ATTR, MEMORY_ATTR, memory_level, planned_soc
from edge_opt.ir.session import input_names, output_names
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.registry import OpTable
from edge_opt.support.socs import get_soc

CTYPES = {
    np.dtype(np.float32): "float",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
}

SECTIONS = {"L1": "PI_CL_L1", "L2": "PI_L2", "L3": "PI_L3"}

PUBLIC_NAMES = {"forward": "infer", "train_step": "train_step"}
"""C names of the functions every model has (others keep their own name)."""


class EmitError(Exception):
    """The module cannot be printed as C (the message says why and what to do)."""


def ctype(type: MemRefType) -> str:
    dtype = numpy_dtype(type.element_type)
    if dtype not in CTYPES:
        raise EmitError(f"no C type for element type {type.element_type}")
    return CTYPES[dtype]


C_KEYWORDS = frozenset(
    """auto break case char const continue default do double else enum extern float for
    goto if inline int long register restrict return short signed sizeof static struct
    switch typedef union unsigned void volatile while _Alignas _Alignof _Atomic _Bool
    _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof
    bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
    asm typeof noreturn""".split()
)
"""C89 to C23 keywords, and the GNU/stdbool/stdnoreturn spellings of some."""

_RESERVED_NAMES = frozenset(
    """main init infer train_step args arg result UNUSED NULL errno assert offsetof
    math_errhandling stdin stdout stderr FILE size_t ssize_t ptrdiff_t wchar_t
    max_align_t float_t double_t clock_t time_t int8_t int16_t int32_t int64_t uint8_t
    uint16_t uint32_t uint64_t intptr_t uintptr_t intmax_t uintmax_t""".split()
)
"""Names the generated code, the runtime or the C headers it includes use (functions,
types, object-like macros)."""

_RESERVED_PATTERN = re.compile(
    r"_[A-Z_].*|__.*|(edge|EDGE|pi|PI|pmsis|PMSIS|pthread|PTHREAD)_.*"
    r"|u?int_(least|fast)\d+_t|[A-Z][A-Z0-9_]+"
)
"""Identifiers reserved by C (`_X`, `__x`), the runtime's and the PULP SDK's name
spaces (`edge_`, `pi_`, ...), and macro-like all-capital names (an SDK header may define
any of them as a macro)."""


def is_reserved(identifier: str) -> bool:
    """Whether a model's name may not be used as it is in the generated C."""
    return (
        identifier in C_KEYWORDS
        or identifier in _RESERVED_NAMES
        or _RESERVED_PATTERN.fullmatch(identifier) is not None
    )


def c_identifier(name: str) -> str:
    """The C identifier of a model's name (an input, an output, a value): characters
    outside `[A-Za-z0-9_]` become `_`; a name that then starts with a digit, is empty
    or is reserved (`is_reserved`: a keyword such as `int`, a runtime or C library name
    such as `main` or `train_step`, `edge_*`, a macro-like name) gets a `v_` prefix.
    Deterministic; distinct names can meet (`a.b`, `a_b`): `unique_identifiers` tells
    them apart."""
    identifier = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not identifier or identifier[0].isdigit() or is_reserved(identifier):
        identifier = "v_" + identifier
    return identifier


def unique_identifiers(names: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """`c_identifier` of each name, made distinct (and distinct from `taken`) by the
    first free suffix `_1`, `_2`, ... in the order given (the suffixed name goes through
    `c_identifier` again: `A_1` looks like a macro and becomes `v_A_1`)."""
    used = set(taken)
    result = []
    for name in names:
        base = c_identifier(name)
        candidate, n = base, 1
        while candidate in used:
            # `A` is fine but `A_1` looks like a macro: suffixed names are mangled too.
            candidate, n = c_identifier(f"{base}_{n}"), n + 1
        used.add(candidate)
        result.append(candidate)
    return result


def c_string(text: str) -> str:
    """A C string literal of `text` (UTF-8; quotes, backslashes, control and non-ASCII
    bytes as octal escapes)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in "\\\"" or byte < 0x20 or byte > 0x7E or char == "?":
            out.append(f"\\{byte:03o}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """`text` made safe inside a `/* ... */` comment (no `*/`, one line)."""
    return re.sub(r"[\x00-\x1f]", " ", text).replace("*/", "* /")


def c_literal(value: float | int, ctype_: str) -> str:
    if ctype_ != "float":
        return str(int(value))
    value = float(np.float32(value))
    if math.isnan(value):
        return "__builtin_nanf(\"\")"
    if math.isinf(value):
        return "__builtin_inff()" if value > 0 else "-__builtin_inff()"
    text = f"{value:.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def c_array(values: np.ndarray, ctype_: str, per_line: int = 8, indent: str = "  ") -> str:
    flat = values.reshape(-1)
    items = [c_literal(v, ctype_) for v in flat.tolist()]
    lines = [
        indent + ", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)
    ]
    return "{\n" + ",\n".join(lines) + "\n}"


Emitter = Callable[["FunctionContext", Operation], None]
EMITTERS: OpTable[Emitter] = OpTable()
"""The C form of each kernel op, registered with `@emitter(OpType, ...)`."""
emitter = EMITTERS.register

STRUCTURE: OpTable[Emitter] = OpTable()
"""The C form of the ops that are not kernel calls and print their own statements (the
tile and DMA levels: `edge_opt.backends.c.tiles`), registered with `@structure(...)`."""
structure = STRUCTURE.register

SCOPED: set[type[Operation]] = set()
"""Ops whose results are C locals declared among the statements (the tile level's
windows, slots and pads, with their boxes): the printer opens a block scope before the
first such op and closes it after the last use of their results, so that the locals of
one loop nest share the stack with the next nest's instead of adding up."""


@dataclass
class FunctionContext:
    """Printer state of one function body."""

    module: ModulePrinter
    function: func.FuncOp
    names: dict[SSAValue, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    declarations: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    structs: int = 0
    boxes: dict[SSAValue, str] = field(default_factory=dict)
    """The C `edge_box_t` of a tile's window or slot (`edge_opt.backends.c.tiles`)."""
    carried: dict[SSAValue, str] = field(default_factory=dict)
    """The two `edge_dma_t` of a token a `tile.for` carries, by its block argument."""
    descriptors: dict[object, int] | None = None
    """The first `edge_dma_t` of the function's descriptor pool that holds a token, by
    its value, or by (loop, position) for the two a `tile.for` carries; planned at the
    function's first DMA op (`edge_opt.backends.c.tiles`)."""

    # --- helpers for kernel emitters ----------------------------------------------

    def ptr(self, value: SSAValue) -> str:
        """The C pointer of a buffer."""
        return self.names[value]

    def mark_call(self, op: Operation) -> None:
        """In the profiler's build: the statements that follow belong to kernel call
        `op` (the same number each time `op` is marked)."""
        calls = self.module.profile
        if calls is not None:
            self.statements.append(f"  edge_profile_call({calls.setdefault(op, len(calls))});")

    @staticmethod
    def shape(value: SSAValue) -> tuple[int, ...]:
        assert isinstance(value.type, MemRefType)
        return tuple(value.type.get_shape())

    def numel(self, value: SSAValue) -> int:
        return math.prod(self.shape(value))

    @staticmethod
    def ctype(value: SSAValue) -> str:
        assert isinstance(value.type, MemRefType)
        return ctype(value.type)

    def call(self, function: str, *args: object) -> None:
        self.statements.append(f"  {function}({', '.join(str(a) for a in args)});")

    def params(self, struct: str, runtime: Mapping[str, str] | None = None,
               **fields: object) -> str:
        """Declares a `static const struct` of kernel parameters; returns its address.
        Fields in `runtime` take the C expression given there when the function starts
        (state such as the learning rate), which makes the struct a local."""
        name = self.fresh(f"params_{self.structs}")
        self.structs += 1
        runtime = runtime or {}
        body = ", ".join(f".{k} = {runtime.get(k) or _c_value(v)}" for k, v in fields.items())
        storage = "const" if set(runtime) & set(fields) else "static const"
        self.declarations.append(f"  {storage} {struct} {name} = {{{body}}};")
        return f"&{name}"

    # --- names ------------------------------------------------------------------------

    def fresh(self, hint: str | None) -> str:
        base = c_identifier(hint or "buf")
        name, n = base, 1
        while name in self.used or is_reserved(name):
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        return name


def _c_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return c_literal(value, "float")
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_c_value(v) for v in value) + "}"
    if isinstance(value, str):
        return value
    raise EmitError(f"no C form for kernel parameter {value!r}")


@dataclass
class ModulePrinter:
    """Prints the module's storage and functions."""

    module: ModuleOp
    constants: list[str] = field(default_factory=list)
    constant_names: dict[bytes, str] = field(default_factory=dict)
    profile: dict[Operation, int] | None = None
    """For the profiler's build: the number of each kernel call marked with
    `edge_profile_call` (None: no marks, the normal build)."""

    def arenas(self) -> dict[str, int]:
        plan = self.module.attributes.get(MEMORY_ATTR)
        if not isinstance(plan, DictionaryAttr):
            raise EmitError("the module has no memory plan: run bufferize and plan-memory")
        sizes = {}
        for level, figures in plan.data.items():
            assert isinstance(figures, DictionaryAttr)
            arena = figures.data["arena"]
            assert isinstance(arena, IntegerAttr)
            sizes[level] = arena.value.data
        return sizes

    def params(self) -> list[nn.ParamOp]:
        return [op for op in self.module.ops if isinstance(op, nn.ParamOp)]

    def functions(self) -> list[func.FuncOp]:
        return [op for op in self.module.ops if isinstance(op, func.FuncOp)]

    def constant(self, op: kernel.ConstantOp) -> str:
        """A `static const` array with the op's value (shared between equal values)."""
        assert isinstance(op.result.type, MemRefType)
        type_ = ctype(op.result.type)
        value = op.array()
        key = type_.encode() + value.tobytes()
        if key not in self.constant_names:
            name = f"edge_const_{len(self.constant_names)}"
            self.constant_names[key] = name
            self.constants.append(
                f"static const {type_} {name}[{value.size}] = {c_array(value, type_)};"
            )
        return self.constant_names[key]


def param_symbol(name: str) -> str:
    """The C array of parameter `@name`: `edge_param_<name>` when the name is made of
    `[A-Za-z0-9_]`, else `edge_paramx_<hex of its UTF-8 bytes>` (two disjoint, injective
    spellings: distinct parameters never share a symbol)."""
    if re.fullmatch(r"[A-Za-z0-9_]+", name):
        return f"edge_param_{name}"
    return f"edge_paramx_{name.encode('utf-8').hex()}"


def public_name(function: func.FuncOp) -> str:
    """`forward` is `infer`, `train_step` is `train_step`; other functions keep their
    name as a C identifier, distinct from these and from each other."""
    name = function.sym_name.data
    if name in PUBLIC_NAMES:
        return PUBLIC_NAMES[name]
    module = function.parent_op()
    siblings = (
        [o.sym_name.data for o in module.ops if isinstance(o, func.FuncOp)]
        if module is not None
        else [name]
    )
    others = [n for n in siblings if n not in PUBLIC_NAMES]
    return unique_identifiers(others, PUBLIC_NAMES.values())[others.index(name)]


def io_identifiers(function: func.FuncOp) -> tuple[list[str], list[str]]:
    """C names of a function's inputs and of its output pointers (`<name>_out`):
    the `nn.name`s as `unique_identifiers`, distinct from each other."""
    inputs = input_names(function)
    names = unique_identifiers([*inputs, *(f"{n}_out" for n in output_names(function))])
    return names[: len(inputs)], names[len(inputs) :]


def function_signature(function: func.FuncOp) -> str:
    """`float train_step(const float *image, const int32_t *labels)`: inputs by pointer,
    a single rank-0 float result returned, other results written to `*_out` pointers."""
    inputs, outputs = io_identifiers(function)
    args = [
        f"const {ctype(a.type)} *{n}"  # type: ignore[arg-type]
        for n, a in zip(inputs, function.body.block.args)
    ]
    results = function.function_type.outputs.data
    returns = "void"
    if returns_scalar(function):
        returns = ctype(results[0])  # type: ignore[arg-type]
    else:
        args += [
            f"{ctype(t)} *{n}"  # type: ignore[arg-type]
            for n, t in zip(outputs, results)
        ]
    return f"{returns} {public_name(function)}({', '.join(args) or 'void'})"


def returns_scalar(function: func.FuncOp) -> bool:
    results = function.function_type.outputs.data
    return (
        len(results) == 1
        and isinstance(results[0], MemRefType)
        and results[0].get_shape() == ()
        and ctype(results[0]) == "float"
    )


def print_function(printer: ModulePrinter, function: func.FuncOp) -> str:
    """The body (run by every core) and the public wrapper of one function."""
    ctx = FunctionContext(printer, function)
    name = public_name(function)
    block = function.body.block
    inputs, outputs = io_identifiers(function)
    fields = [f"  const {ctype(a.type)} *{n};"  # type: ignore[arg-type]
              for n, a in zip(inputs, block.args)]
    fields += [f"  {ctype(t)} *{n};"  # type: ignore[arg-type]
               for n, t in zip(outputs, function.function_type.outputs.data)]
    for n, a in zip(inputs, block.args):
        ctx.names[a] = ctx.fresh(n)
        ctx.declarations.append(
            f"  const {ctype(a.type)} *const {ctx.names[a]} UNUSED = "  # type: ignore[arg-type]
            f"args->{n};"
        )
    _print_scoped(ctx, list(block.ops))
    lines = ["typedef struct {\n" + ("\n".join(fields) or "  int unused;") +
             f"\n}} edge_{name}_args_t;", "",
             f"/* @{c_comment(function.sym_name.data)}: {_kernel_count(function)} kernel "
             "calls, run by every core of the team. */",
             f"static void edge_{name}_body(void *arg) {{",
             f"  const edge_{name}_args_t *args = (const edge_{name}_args_t *)arg;"]
    lines += ctx.declarations + [""] + ctx.statements
    lines.append("}")
    lines.append("")
    lines += _wrapper(function, inputs, outputs)
    return "\n".join(lines) + "\n"


def _print_scoped(ctx: FunctionContext, ops: list[Operation]) -> None:
    """Prints `ops`, each range of `_scopes` in a block of its own."""
    position = 0
    for first, last in _scopes(ops):
        for op in ops[position:first]:
            print_op(ctx, op)
        outer, ctx.statements = ctx.statements, []
        for op in ops[first:last + 1]:
            print_op(ctx, op)
        inner, ctx.statements = ctx.statements, outer
        ctx.statements += ["  {", *("  " + line for line in inner), "  }"]
        position = last + 1
    for op in ops[position:]:
        print_op(ctx, op)


def position_in(ops: Sequence[Operation]) -> Callable[[Operation], int]:
    """The position in `ops` (a block's ops, in order) of an op or of its ancestor
    among them."""
    index = {op: i for i, op in enumerate(ops)}

    def position(op: Operation) -> int:
        while op not in index:
            parent = op.parent_op()
            assert parent is not None
            op = parent
        return index[op]

    return position


def _scopes(ops: list[Operation]) -> list[tuple[int, int]]:
    """Disjoint ranges [first, last] of `ops` that contain every use of the results of
    the `SCOPED` ops among them (the uses of views of them too)."""
    top = position_in(ops)

    def last_use(value: SSAValue) -> int:
        end = -1
        for use in value.uses:
            end = max(end, top(use.operation))
            if isinstance(use.operation, kernel.ViewOp):
                end = max(end, last_use(use.operation.result))
        return end

    ranges: list[tuple[int, int]] = []
    for i, op in enumerate(ops):
        if type(op) not in SCOPED:
            continue
        end = max([i, *(last_use(r) for r in op.results)])
        if ranges and i <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((i, end))
    return ranges


def _wrapper(function: func.FuncOp, inputs: list[str], outputs: list[str]) -> list[str]:
    """The public function: packs its arguments (C names, `io_identifiers`) and runs
    the body on the team."""
    name = public_name(function)
    values = list(inputs)
    lines = [function_signature(function) + " {"]
    if returns_scalar(function):
        result = function.function_type.outputs.data[0]
        lines.append(f"  {ctype(result)} result = 0;")  # type: ignore[arg-type]
        values.append("&result")
    else:
        values += outputs
    lines.append(f"  edge_{name}_args_t args = {{{', '.join(values) or '0'}}};")
    lines.append(f"  edge_fork(edge_{name}_body, &args);")
    if returns_scalar(function):
        lines.append("  return result;")
    lines.append("}")
    return lines


def _kernel_count(function: func.FuncOp) -> int:
    return sum(1 for op in function.walk() if isinstance(op, kernel.KernelOp))


def print_op(ctx: FunctionContext, op: Operation) -> None:
    if isinstance(op, kernel.AllocOp):
        _declare_alloc(ctx, op)
    elif isinstance(op, kernel.GetParamOp):
        name = ctx.fresh(op.param.string_value())
        ctx.names[op.result] = name
        ctx.declarations.append(
            f"  {ctype(op.result.type)} *const {name} UNUSED = "  # type: ignore[arg-type]
            f"{param_symbol(op.param.string_value())};"
        )
    elif isinstance(op, kernel.ConstantOp):
        name = ctx.fresh(op.result.name_hint or "constant")
        ctx.names[op.result] = name
        ctx.declarations.append(
            f"  const {ctype(op.result.type)} *const {name} UNUSED = "  # type: ignore[arg-type]
            f"{ctx.module.constant(op)};"
        )
    elif isinstance(op, kernel.ViewOp):
        ctx.names[op.result] = ctx.names[op.source]
    elif isinstance(op, kernel.CopyOp):
        ctx.statements.append("  /* kernel.copy */")
        ctx.call("edge_copy", ctx.ptr(op.source), ctx.ptr(op.dest),
                 f"{ctx.numel(op.source)} * sizeof({ctx.ctype(op.source)})")
    elif isinstance(op, func.ReturnOp):
        _print_return(ctx, op)
    elif type(op) in STRUCTURE:
        STRUCTURE[type(op)](ctx, op)
    else:
        emit = EMITTERS.get(type(op))
        if emit is None:
            raise EmitError(f"no C emitter for {op.name}")
        target = op.operands[-1] if op.operands else None
        label = ctx.names.get(target, "") if target is not None else ""
        tensor_op = getattr(op, "TENSOR_OP", None)
        source = tensor_op.name if tensor_op is not None else op.name
        ctx.statements.append(f"  /* {source} -> {label} */")
        ctx.mark_call(op)
        emit(ctx, op)


def _declare_alloc(ctx: FunctionContext, op: kernel.AllocOp) -> None:
    if op.offset is None:
        raise EmitError("a kernel.alloc has no offset: run plan-memory")
    assert isinstance(op.result.type, MemRefType)
    level = memory_level(op.result.type)
    name = ctx.fresh(op.result.name_hint)
    ctx.names[op.result] = name
    type_ = ctype(op.result.type)
    shape = "x".join(map(str, op.result.type.get_shape())) or "scalar"
    ctx.declarations.append(
        f"  {type_} *const {name} UNUSED = ({type_} *)(edge_arena_{level} + "
        f"{op.offset.value.data}); /* {shape} */"
    )


def _print_return(ctx: FunctionContext, op: func.ReturnOp) -> None:
    _, outputs = io_identifiers(ctx.function)
    ctx.statements.append("  if (edge_core_id() == 0) {")
    for name, value in zip(outputs, op.operands):
        size = f"{ctx.numel(value)} * sizeof({ctx.ctype(value)})"
        target = "args->" + name
        ctx.statements.append(f"    edge_copy_serial({ctx.ptr(value)}, {target}, {size});")
    ctx.statements.append("  }")
    ctx.statements.append("  edge_barrier();")


def print_network_c(module: ModuleOp, definitions: Sequence[str] = (),
                    loader: Sequence[str] = (),
                    profile: dict[Operation, int] | None = None) -> str:
    """`network.c`: storage (arenas, parameters, constants), `loader` (`init()`, which
    fills the parameters' storage: see `params_blob`), `definitions` (runtime state the
    functions read) and every function; with `profile` (filled in) each kernel call
    marked for the profiler."""
    printer = ModulePrinter(module, profile=profile)
    functions = [print_function(printer, f) for f in printer.functions()]
    lines = [
        "/* Generated by edge-opt. Do not edit: regenerate from the model instead. */",
        '#include "network.h"',
        '#include "edge_runtime.h"',
        "",
        "/* Buffers a function declares but (after in-place reuse or as an unused input) does",
        " * not read are fine. */",
        "#define UNUSED __attribute__((unused))",
        "",
        "/* One arena per memory level: every buffer of a function at its planned offset. */",
    ]
    for level, size in sorted(printer.arenas().items()):
        if size:
            lines.append(
                f"{SECTIONS[level]} static uint8_t edge_arena_{level}[{size}] "
                "__attribute__((aligned(16)));"
            )
    lines += ["", "/* Parameters and optimizer state, in their memory level; init() loads their",
              " * initial values from params.bin. */"]
    table = []
    for param in printer.params():
        lines.append(_param_definition(param))
        table.append(param)
    lines += [""] + printer.constants + [""]
    lines.append("static const edge_param_t edge_param_table[] = {")
    for param in table:
        dtype = numpy_dtype(param.type.element_type)
        lines.append(
            f"  {{{c_string(param.sym_name.data)}, {param_symbol(param.sym_name.data)}, "
            f"{param.type.element_count()}, {dtype.itemsize}}},"
        )
    lines.append("};")
    lines.append("")
    lines.append("const edge_param_t *edge_params(size_t *count) {")
    lines.append(f"  *count = {len(table)};")
    lines.append("  return edge_param_table;")
    lines.append("}")
    lines.append("")
    lines += _IMPORT
    lines.append("")
    lines += loader
    lines.append("")
    lines += definitions
    lines += functions
    return "\n".join(lines) + "\n"


_IMPORT = r"""int edge_set_param(const char *name, const void *data, size_t bytes) {
  size_t count;
  const edge_param_t *params = edge_params(&count);
  for (size_t i = 0; i < count; i++) {
    const char *a = params[i].name, *b = name;
    while (*a && *a == *b) a++, b++;
    if (*a || *b) continue;
    if (bytes != params[i].count * params[i].element_size) return -2;
    edge_copy_serial(data, params[i].data, bytes);
    return 0;
  }
  return -1;
}""".splitlines()


def _param_definition(param: nn.ParamOp) -> str:
    level = param.attributes.get(LEVEL_ATTR)
    if not isinstance(level, StringAttr):
        raise EmitError(f"@{param.sym_name.data} has no memory level: run bufferize")
    dtype = numpy_dtype(param.type.element_type)
    if dtype not in CTYPES:
        raise EmitError(f"@{param.sym_name.data}: no C type for {param.type.element_type}")
    type_ = CTYPES[dtype]
    count = param.type.element_count()
    if param.value is None:
        raise EmitError(f"@{param.sym_name.data} has no value (load the model's .npz)")
    return (
        f"{SECTIONS[level.data]} {type_} {param_symbol(param.sym_name.data)}[{count}] "
        "__attribute__((aligned(16)));"
    )


def soc_macros(module: ModuleOp) -> list[str]:
    """The SoC the module is planned for, as macros: its name, cores (the team size of
    the PULP build and the default of the host test) and usable bytes per level."""
    given = planned_soc(module) or "host"
    soc = get_soc(given)
    lines = [
        f"/* The SoC this network is planned for (plan-memory{{soc={given}}}): its cores",
        " * and the usable bytes of each memory level (0: the SoC has no such level). */",
        f'#define EDGE_SOC "{soc.name}"',
        f"#define EDGE_SOC_CORES {soc.cores}",
    ]
    lines += [f"#define EDGE_SOC_{level}_BYTES {soc.memory.get(level, 0)}"
              for level in ("L1", "L2", "L3")]
    return lines + ["#ifndef NUM_CORES", "#define NUM_CORES EDGE_SOC_CORES", "#endif", ""]


def print_network_h(module: ModuleOp, declarations: Sequence[str] = ()) -> str:
    printer = ModulePrinter(module)
    lines = [
        "/* Generated by edge-opt. Do not edit: regenerate from the model instead. */",
        "#ifndef EDGE_NETWORK_H",
        "#define EDGE_NETWORK_H",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        *soc_macros(module),
        "/* A parameter's storage, for saving and restoring trained values. */",
        "typedef struct {",
        "  const char *name;",
        "  void *data;",
        "  size_t count;",
        "  size_t element_size;",
        "} edge_param_t;",
        "",
        "/* Every parameter (and optimizer state), in declaration order: read `data` to",
        " * export trained values. */",
        "const edge_param_t *edge_params(size_t *count);",
        "",
        "/* Imports a parameter's values by name (after init(), which loads the initial",
        " * values): 0 on success, -1 for an unknown name, -2 if `bytes` is not the",
        " * parameter's size. */",
        "int edge_set_param(const char *name, const void *data, size_t bytes);",
        "",
        "/* Prepares the runtime (on a host: a team of EDGE_MAX_CORES threads) and loads the",
        " * linked-in params.bin (none with -DEDGE_PARAMS_EXTERNAL: call edge_load_params",
        " * after it). Call once before the functions below; 0 on success, else the",
        " * error of edge_load_params. */",
        "int init(void);",
        "",
        *declarations,
    ]
    for function in printer.functions():
        lines.append(f"/* @{c_comment(function.sym_name.data)} */")
        lines.append(function_signature(function) + ";")
        lines.append("")
    lines.append("#endif /* EDGE_NETWORK_H */")
    return "\n".join(lines) + "\n"
