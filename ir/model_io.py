"""Reading and writing models: `model.mlir` plus its sidecar `model.npz`.

In memory, a module is self-contained: every `nn.param` carries its value inline, so
passes, the interpreter and the tests need nothing but the module. On disk, values with
more than `INLINE_LIMIT` elements (and not a splat) move to the sidecar `.npz`, keyed by
parameter name, so the `.mlir` stays small and readable. Every write goes to a temporary
file that is renamed into place: an error never leaves a half-written output.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException
from xdsl.utils.lexer import Span

from edge_opt.dialects import nn
from edge_opt.ir.context import make_context
from edge_opt.support.dtypes import numpy_dtype, to_dense, to_numpy
from edge_opt.support.errors import ModelFileError, read_user_file

INLINE_LIMIT = 16
"""Parameters with at most this many elements (or a splat value) stay in the .mlir."""


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    return Path(path).with_suffix(".npz")


class LocatingParser(Parser):
    """xDSL's parser, remembering where each op starts so that a verifier error can
    point at the op's line and column like a parse error does."""

    def __init__(self, ctx: Context, input: str, name: str = "<input>"):
        super().__init__(ctx, input, name)
        self.op_spans: dict[Operation, Span] = {}

    def parse_operation(self) -> Operation:
        span = self._current_token.span
        try:
            op = super().parse_operation()
        except VerifyException as e:
            # The declarative format checks operand types while parsing; its message
            # ("Unexpected attribute i32") names neither the op nor the place.
            raise ParseError(span, f"{self._op_name_at(span)}: {_type_message(e)}") from None
        self.op_spans[op] = span
        return op

    def _op_name_at(self, span: Span) -> str:
        text = span.input.content[span.start:]
        match = re.match(r'(?:%[^=]*=\s*)?"?([A-Za-z_][\w.$-]*)', text)
        return match.group(1) if match else "operation"


def _type_message(error: VerifyException) -> str:
    message = first_line(error)
    if message.startswith("Unexpected attribute"):
        found = message.removeprefix("Unexpected attribute").strip()
        return (
            f"an operand or result has an unsupported type ({found} is not allowed "
            "here; see the op's documentation for its types)"
        )
    return message


def parse_module(
    text: str,
    filename: str = "<input>",
    ctx: Context | None = None,
    implicit_module: bool = True,
) -> ModuleOp:
    """Parses and verifies MLIR text; errors become `ModelFileError` with the file,
    line and column of the offending op."""
    parser = LocatingParser(ctx or make_context(), text, filename)
    try:
        module = parser.parse_module(implicit_module)
    except ParseError as e:
        raise ModelFileError(f"parse error: {e}") from None
    verify_module(module, filename, parser.op_spans)
    return module


def verify_module(
    module: ModuleOp, where: str, op_spans: Mapping[Operation, Span] | None = None
) -> None:
    """Verifies `module`; the error names the first op that fails, at its position in
    the source when `op_spans` (from `LocatingParser`) knows it."""
    try:
        module.verify()
    except VerifyException as e:
        message = first_line(e)
        for op in module.walk():
            try:
                op.verify(verify_nested_ops=False)
            except VerifyException as op_error:
                message = first_line(op_error).removeprefix("Operation does not verify: ")
                if op_spans and op in op_spans:
                    raise ModelFileError(
                        "invalid IR: " + op_spans[op].print_with_context(message).rstrip()
                    ) from None
                break
        raise ModelFileError(f"{where}: invalid IR: {message}") from None


def first_line(error: Exception) -> str:
    """The sentence of an xDSL message: verifier messages end with the whole printed
    module (dropped), and a constraint's message puts its reason on the line after a
    colon ("operand 'lhs' at position 0 does not verify:" / "Unexpected attribute
    i32"), which is kept."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    if not lines:
        return repr(error)
    sentence = lines[0]
    for line in lines[1:]:
        if not sentence.endswith(":") or not line:
            break
        sentence = f"{sentence} {line}"
    return _CONSTRAINT.sub(
        r"\1 '\2' (position \3) uses \4, which this op does not accept", sentence
    )


_CONSTRAINT = re.compile(
    r"(operand|result) '(\w+)' at position (\d+) does not verify: Unexpected attribute (.+)$"
)


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` archive by name; anything else is a `ModelFileError`
    that says what the file is instead (empty, not a zip archive, an object array)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ModelFileError(f"{path}: the file is empty (expected an .npz archive)")
        if not zipfile.is_zipfile(path):
            raise ModelFileError(
                f"{path}: not an .npz archive (not a zip file; write it with numpy.savez)"
            )
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not an .npz file") from None
    except ValueError as e:
        if "pickle" in str(e):
            raise ModelFileError(
                f"{path}: holds Python objects, not plain arrays (edge-opt reads numeric "
                "arrays only)"
            ) from None
        raise ModelFileError(f"{path}: not a readable .npz file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: not a readable .npz file ({e})") from None


def npz_names(path: str | os.PathLike[str]) -> set[str] | None:
    """The array names in an `.npz` archive without reading the arrays, or None if it
    is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {n.removesuffix(".npy") for n in archive.namelist()}
    except (OSError, zipfile.BadZipFile):
        return None


def attach_values(
    module: ModuleOp,
    values: Mapping[str, np.ndarray],
    source: str = "values",
    sidecar: bool = False,
) -> None:
    """Sets the inline value of every `nn.param` named in `values`. The implicit
    `sidecar` of a model file must belong to it: it may not give a parameter a value
    other than the one written inline (a stale sidecar of an earlier model)."""
    params = {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ModelFileError(
            f"{source}: arrays for parameters the module does not declare: "
            f"{', '.join(unknown[:8])}"
            + (" (is it the sidecar of another model?)" if sidecar else "")
        )
    for name, array in values.items():
        op = params[name]
        expected = tuple(op.type.get_shape())
        dtype = numpy_dtype(op.type.element_type)
        if array.shape != expected or array.dtype != dtype:
            raise ModelFileError(
                f"{source}: array '{name}' is {array.dtype}{list(array.shape)}, but "
                f"@{name} is declared {op.type}"
            )
        if sidecar and op.value is not None and not np.array_equal(
            to_numpy(op.value), array, equal_nan=True
        ):
            raise ModelFileError(
                f"{source}: gives @{name} a value other than the one written in the "
                "model: it is not this model's sidecar (left from an earlier model?); "
                "remove it, or give parameter values explicitly with --params"
            )
        op.properties["value"] = to_dense(array, op.type)


def detach_values(
    module: ModuleOp, inline_limit: int = INLINE_LIMIT
) -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """A copy of `module` whose large parameter values are removed, and those values."""
    stripped = module.clone()
    values: dict[str, np.ndarray] = {}
    for op in stripped.ops:
        if not isinstance(op, nn.ParamOp) or op.value is None:
            continue
        if op.value.is_splat() or len(op.value) <= inline_limit:
            continue
        values[op.sym_name.data] = to_numpy(op.value)
        del op.properties["value"]
    return stripped, values


def print_module(module: ModuleOp, generic: bool = False) -> str:
    stream = io.StringIO()
    Printer(stream=stream, print_generic_format=generic).print_op(module)
    stream.write("\n")
    return stream.getvalue()


def load_model(
    path: str | os.PathLike[str], params_path: str | os.PathLike[str] | None = None
) -> ModuleOp:
    """Reads `path` (.mlir) and attaches the values of its sidecar `.npz` (or of
    `params_path`). Every parameter without an inline value must be in the .npz."""
    path = Path(path)
    text = read_user_file(path, ModelFileError)
    module = parse_module(text, str(path))
    npz = Path(params_path) if params_path is not None else sidecar_path(path)
    needed = [
        op.sym_name.data
        for op in module.ops
        if isinstance(op, nn.ParamOp) and op.value is None
    ]
    if npz.exists():
        attach_values(module, read_npz(npz), str(npz), sidecar=params_path is None)
    elif params_path is not None:
        raise ModelFileError(f"{npz}: no such file")
    missing = [
        name
        for name in needed
        if next(
            op for op in module.ops if isinstance(op, nn.ParamOp) and op.sym_name.data == name
        ).value
        is None
    ]
    if missing:
        raise ModelFileError(
            f"{path}: {len(missing)} parameter(s) have no value "
            f"({', '.join('@' + n for n in missing[:5])}{' ...' if len(missing) > 5 else ''})"
            f" and {npz} {'lacks them' if npz.exists() else 'does not exist'}"
        )
    return module


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Calls `write(tmp)` for a temporary file next to `path`, then renames it over
    `path`; on any error the temporary file is removed and `path` is untouched."""
    commit_files({Path(path): write})


def commit_files(
    writers: Mapping[Path, Callable[[str], None]], remove: Sequence[Path] = ()
) -> None:
    """Writes every file of `writers` to a temporary file beside it, and only when all
    are written renames them into place (in the given order) and removes `remove`: an
    error while writing leaves every path as it was."""
    temporaries: dict[Path, str] = {}
    current = next(iter(writers), Path("."))
    try:
        for current, write in writers.items():
            temporaries[current] = _temporary(current)
            write(temporaries[current])
            os.chmod(temporaries[current], 0o666 & ~umask())
        for current, tmp in temporaries.items():
            os.replace(tmp, current)
        for current in remove:
            current.unlink(missing_ok=True)
    except OSError as e:
        raise ModelFileError(f"{current}: cannot write ({e.strerror or e})") from None
    finally:
        for tmp in temporaries.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def _temporary(path: Path) -> str:
    if not path.parent.is_dir():
        raise ModelFileError(f"{path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return tmp


def check_output(
    path: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str] | None] = (),
    option: str = "-o",
    suffix: str | None = None,
    model: bool = False,
) -> Path:
    """`path` as a file to write, checked before any work is done: not a directory,
    not one of `inputs`, in an existing, writable directory, with `suffix` if given.
    A `model` output also writes its sidecar `.npz`, which must not be an input
    either, so the model itself cannot be named `.npz`. The error says what to give
    instead."""
    text = os.fspath(path)
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        example = path / ("model" + (suffix or ".mlir"))
        raise ModelFileError(f"{option} {text}: is a directory; give a file name "
                             f"(e.g. {option} {example})")
    if suffix is not None and path.suffix != suffix:
        raise ModelFileError(
            f"{option} {text}: expected a {suffix} file (e.g. {option} "
            f"{path.with_suffix(suffix)})"
        )
    if model and path.suffix == ".npz":
        raise ModelFileError(
            f"{option} {text}: a model is written as .mlir text with its parameters in "
            f"the .npz beside it; give the .mlir name (e.g. {option} "
            f"{path.with_suffix('.mlir')})"
        )
    written = [path, sidecar_path(path)] if model else [path]
    for given in inputs:
        for target in written:
            if given is not None and same_file(target, Path(given)):
                raise ModelFileError(
                    f"{option} {text}: would overwrite the input {given}"
                    + (f" (with the sidecar {target})" if target != path else "")
                    + "; give another name"
                )
    if not path.parent.is_dir():
        raise ModelFileError(f"{option} {text}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise ModelFileError(f"{option} {text}: directory {path.parent} is not writable")
    return path


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    a, b = Path(a), Path(b)
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """An uncompressed .npz as `np.savez` writes it, but byte-deterministic: sorted
    members and a fixed timestamp (savez stamps the current time)."""
    atomic_write(path, lambda tmp: _write_npz_file(tmp, arrays))


def _write_npz_file(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in sorted(arrays.items()):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def save_model(
    module: ModuleOp,
    path: str | os.PathLike[str],
    inline_limit: int = INLINE_LIMIT,
    generic: bool = False,
) -> Path | None:
    """Writes `path` (.mlir) and, if any value is too large to inline, its sidecar
    `.npz` (see `write_model`); returns the sidecar's path or None."""
    stripped, values = detach_values(module, inline_limit)
    return write_model(path, print_module(stripped, generic), values, param_names(module))


def param_names(module: ModuleOp) -> set[str]:
    return {op.sym_name.data for op in module.ops if isinstance(op, nn.ParamOp)}


_PARAM_DECLARATION = re.compile(
    r'nn\.param\s+(?:trainable\s+)?@(?:"((?:[^"\\]|\\.)*)"|([\w$.-]+))'
)


def declared_params(path: Path) -> set[str]:
    """The parameter names an existing model file declares (read without parsing the
    whole model; empty if there is no such file)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {quoted or bare for quoted, bare in _PARAM_DECLARATION.findall(text)}


def write_model(
    path: str | os.PathLike[str],
    text: str,
    values: Mapping[str, np.ndarray],
    params: set[str],
) -> Path | None:
    """Writes the model text to `path` and `values` to its sidecar, together: the
    sidecar always belongs to the model beside it. Without values, an existing
    sidecar is removed if it holds only parameters of this model or of the model file
    it replaces (an earlier version); a file by that name that is something else is
    not touched, and the model is not written (it would be read with that file as its
    parameters)."""
    path, npz = Path(path), sidecar_path(path)
    writers: dict[Path, Callable[[str], None]] = {}
    remove: list[Path] = []
    if values:
        writers[npz] = lambda tmp: _write_npz_file(tmp, values)
    elif npz.exists():
        names = npz_names(npz)
        if names is None or not names <= params | declared_params(path):
            raise ModelFileError(
                f"{path}: {npz} exists beside it and is not a parameter file of this "
                "model; it would be read as the model's parameters. Move it or choose "
                "another output name"
            )
        remove.append(npz)
    writers[path] = lambda tmp: Path(tmp).write_text(text, encoding="utf-8")
    commit_files(writers, remove)
    return npz if values else None
