"""Reading and writing models: `model.mlir` plus its sidecar `model.npz`.

In memory, a module is self-contained: every `nn.param` carries its value inline, so
passes, the interpreter and the tests need nothing but the module. On disk, values with
more than `INLINE_LIMIT` elements (and not a splat) move to the sidecar `.npz`, keyed by
parameter name, so the `.mlir` stays small and readable. Every write goes to a temporary
file that is renamed into place: an error never leaves a half-written output.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
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
from edge_opt.ir.dtypes import numpy_dtype, to_dense, to_numpy
from edge_opt.ir.errors import ModelFileError
from edge_opt.ir.universe import make_context

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
        op = super().parse_operation()
        self.op_spans[op] = span
        return op


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
    """xDSL appends the whole printed module to verifier messages; keep the sentence."""
    return str(error).strip().splitlines()[0] if str(error).strip() else repr(error)


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: not a readable .npz file ({e})") from None


def attach_values(
    module: ModuleOp, values: Mapping[str, np.ndarray], source: str = "values"
) -> None:
    """Sets the inline value of every `nn.param` named in `values`."""
    params = {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ModelFileError(
            f"{source}: arrays for parameters the module does not declare: "
            f"{', '.join(unknown[:8])}"
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
    import io

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
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: cannot read ({e})") from None
    module = parse_module(text, str(path))
    npz = Path(params_path) if params_path is not None else sidecar_path(path)
    needed = [
        op.sym_name.data
        for op in module.ops
        if isinstance(op, nn.ParamOp) and op.value is None
    ]
    if npz.exists():
        attach_values(module, read_npz(npz), str(npz))
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
    path = Path(path)
    if not path.parent.is_dir():
        raise ModelFileError(f"{path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """An uncompressed .npz as `np.savez` writes it, but byte-deterministic: sorted
    members and a fixed timestamp (savez stamps the current time)."""

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in sorted(arrays.items()):
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(
                        member, np.asanyarray(array), allow_pickle=False
                    )

    atomic_write(path, write)


def save_model(
    module: ModuleOp,
    path: str | os.PathLike[str],
    inline_limit: int = INLINE_LIMIT,
    generic: bool = False,
) -> Path | None:
    """Writes `path` (.mlir) and, if any value is too large to inline, its sidecar
    `.npz`; returns the sidecar's path or None."""
    stripped, values = detach_values(module, inline_limit)
    text = print_module(stripped, generic)
    npz = sidecar_path(path)
    if values:
        write_npz(npz, values)
    write_text(path, text)
    return npz if values else None
