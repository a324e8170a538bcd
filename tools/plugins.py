"""Plugins: users' passes, named pipelines and dialect ops for `edge-opt`.

A plugin is a Python file given with `edge-opt --load-plugin my_passes.py` (repeatable;
before or after a subcommand), or an entry point of an installed distribution in the
group `edge_opt.plugins` (loaded at every start). Either way it provides

    def register(plugin: edge_opt.tools.plugins.Plugin) -> None:
        plugin.add_pass(FuseLinearBiasPass)                        # a ModulePass class
        plugin.add_pipeline("my-clean", "fuse-linear-bias,cse,dce", "fusion, then clean-ups")
        plugin.add_dialect(Demo, semantics=[DemoFunctions()],      # ops the interpreter runs
                           generators={"demo.swish": swish})       # ops random models draw

(an entry point may also name the `register` function itself). Registration fills a
`PluginRegistry`, not module-level tables: `registry.activated()` makes its passes,
pipelines, dialects, interpreter implementations and op generators visible to
`parse_pipeline`, `make_context`, `make_interpreter` and `random_models` within a `with`
block, scoped to the current thread or task, and undoes that on exit.

Every problem is a `PluginError` (a `UserError`: one line, exit status 1) naming the
plugin file (with the line, when it is in the plugin's code) or entry point, and the
name at fault: a missing file, an import that fails, no `register`, a pass that is not a
`ModulePass` or has no `name`, a pass, pipeline, dialect, op or generator name that
clashes with a built-in one or another plugin's, a pipeline spec that does not parse.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from xdsl.dialects import get_all_dialects
from xdsl.interpreter import InterpreterFunctions
from xdsl.ir import Dialect
from xdsl.passes import ModulePass

from edge_opt.ir.context import EDGE_OPT_DIALECTS, extra_dialects
from edge_opt.ir.interpreters import extra_semantics
from edge_opt.passes.registry import (
    available_passes,
    extra_passes,
    spec_pipeline,
)
from edge_opt.support.errors import UserError
from edge_opt.testing.generators import ALL_OPS, Generator, extra_generators

ENTRY_POINT_GROUP = "edge_opt.plugins"
"""The entry-point group whose entries `edge-opt` loads at start."""

OPTION = "--load-plugin"


class PluginError(UserError):
    """A plugin that cannot be loaded or registers something wrong."""


@dataclass(frozen=True)
class _Entry:
    value: object
    source: str
    """The plugin that registered it, as messages name it."""


@dataclass
class PluginRegistry:
    """What the loaded plugins registered, by name, with the plugin that did."""

    passes: dict[str, _Entry] = field(default_factory=dict)
    pipelines: dict[str, _Entry] = field(default_factory=dict)
    dialects: dict[str, _Entry] = field(default_factory=dict)
    ops: dict[str, _Entry] = field(default_factory=dict)
    semantics: list[InterpreterFunctions] = field(default_factory=list)
    generators: dict[str, _Entry] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    """The plugin files loaded (worker processes load them again)."""

    # --- loading ------------------------------------------------------------------

    def load_file(self, path: str) -> None:
        """Imports the plugin file `path` and calls its `register`."""
        source = f"plugin {path}"
        file = Path(path)
        if not file.is_file():
            raise PluginError(f"{source}: no such file")
        module = _import_file(file, source)
        register = getattr(module, "register", None)
        if not callable(register):
            raise PluginError(
                f"{source}: defines no register(plugin) function (see docs/plugins-and-fuzzing.md)"
            )
        _call_register(register, Plugin(self, source), source, file)
        self.files.append(path)

    def load_entry_points(self) -> None:
        """Loads every entry point of the group `edge_opt.plugins`, in name order."""
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        for entry in sorted(found, key=lambda e: e.name):
            source = f"plugin entry point '{entry.name}' ({entry.value})"
            try:
                loaded = entry.load()
            except Exception as e:  # noqa: BLE001  (the plugin's error, in one line)
                raise PluginError(f"{source}: cannot load: {_one_line(e)}"
                                  f"{_where(e, None)}") from None
            register = (getattr(loaded, "register", None)
                        if isinstance(loaded, ModuleType) else loaded)
            if not callable(register):
                raise PluginError(f"{source}: defines no register(plugin) function")
            _call_register(register, Plugin(self, source), source, None)

    def check_pipelines(self) -> None:
        """Parses every plugin pipeline's spec (with every plugin active)."""
        with self.activated():
            for name, entry in self.pipelines.items():
                try:
                    entry.value().passes()  # type: ignore[operator]
                except UserError as e:
                    raise PluginError(f"{entry.source}: pipeline '{name}': {e}") from None

    # --- using --------------------------------------------------------------------

    @contextmanager
    def activated(self) -> Iterator[PluginRegistry]:
        """Within the block, what the plugins registered is visible to the parser,
        the pass registry, the interpreter and `random_models`."""
        token = _ACTIVE.set(self)
        try:
            with ExitStack() as stack:
                stack.enter_context(extra_dialects(
                    [e.value for e in self.dialects.values()]))  # type: ignore[misc]
                stack.enter_context(extra_semantics(self.semantics))
                stack.enter_context(extra_passes(
                    {n: _factory(e.value) for n, e in self.passes.items()},
                    {n: _factory(e.value) for n, e in self.pipelines.items()},
                ))
                stack.enter_context(extra_generators(
                    {n: e.value for n, e in self.generators.items()}))  # type: ignore[misc]
                yield self
        finally:
            _ACTIVE.reset(token)


_ACTIVE: ContextVar[PluginRegistry | None] = ContextVar("edge_opt_plugins", default=None)


def active_registry() -> PluginRegistry | None:
    """The registry of the innermost `activated()` block, if any."""
    return _ACTIVE.get()


def _factory(value: object) -> Callable[[], type[ModulePass]]:
    return lambda: value  # type: ignore[return-value]


class Plugin:
    """What a plugin's `register(plugin)` receives: adds the plugin's passes, named
    pipelines and dialects to the registry, checking every name."""

    def __init__(self, registry: PluginRegistry, source: str):
        self._registry = registry
        self.source = source
        """How messages name this plugin (`plugin my_passes.py`)."""

    def add_pass(self, cls: type[ModulePass]) -> None:
        """Registers a `ModulePass` subclass under its `name` (usable in `-p`, in
        pipeline specs and by `edge-opt fuzz`)."""
        if not isinstance(cls, type) or not issubclass(cls, ModulePass):
            raise PluginError(
                f"{self.source}: add_pass({_label(cls)}): not a ModulePass subclass"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"{self.source}: pass class {cls.__name__} has no name (set the class "
                "attribute name = \"my-pass\")"
            )
        self._check_pass_name(name, "pass")
        self._registry.passes[name] = _Entry(cls, self.source)

    def add_pipeline(self, name: str, spec: str, summary: str = "") -> None:
        """Registers `name` as a named pipeline running the passes of `spec` (a pass
        pipeline, `"my-pass,cse,dce"`); `summary` is what `--list-pipelines` says."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"{self.source}: add_pipeline needs a name")
        if not isinstance(spec, str):
            raise PluginError(
                f"{self.source}: pipeline '{name}': the spec must be a string such as "
                "\"my-pass,cse\""
            )
        self._check_pass_name(name, "pipeline")
        self._registry.pipelines[name] = _Entry(
            spec_pipeline(name, spec, summary), self.source
        )

    def add_dialect(
        self,
        dialect: Dialect,
        semantics: Sequence[InterpreterFunctions] = (),
        generators: Mapping[str, Generator] | None = None,
    ) -> None:
        """Registers an xDSL `Dialect` (parsed and printed by `edge-opt`), the
        interpreter implementations of its ops (`InterpreterFunctions` instances with
        `@impl` methods; needed to run and fuzz them) and op generators for
        `random_models` by the name `--ops` uses (see `edge_opt.testing.generators`)."""
        if not isinstance(dialect, Dialect):
            raise PluginError(
                f"{self.source}: add_dialect({_label(dialect)}): not an xDSL Dialect"
            )
        registry = self._registry
        self._check_new(dialect.name, "dialect", registry.dialects,
                        set(EDGE_OPT_DIALECTS) | set(get_all_dialects()))
        for op in dialect.operations:
            self._check_new(op.name, "op", registry.ops, set())
        for functions in semantics:
            if not isinstance(functions, InterpreterFunctions):
                raise PluginError(
                    f"{self.source}: dialect '{dialect.name}': semantics must be "
                    f"InterpreterFunctions instances, not {_label(functions)}"
                )
        for name, generator in (generators or {}).items():
            if not callable(generator):
                raise PluginError(
                    f"{self.source}: op generator '{name}' is not callable"
                )
            self._check_new(name, "op generator", registry.generators, set(ALL_OPS))
        registry.dialects[dialect.name] = _Entry(dialect, self.source)
        for op in dialect.operations:
            registry.ops[op.name] = _Entry(op, self.source)
        registry.semantics.extend(semantics)
        for name, generator in (generators or {}).items():
            registry.generators[name] = _Entry(generator, self.source)

    def _check_pass_name(self, name: str, kind: str) -> None:
        registry = self._registry
        for table in (registry.passes, registry.pipelines):
            if name in table:
                raise PluginError(
                    f"{self.source}: {kind} '{name}' is already registered by "
                    f"{table[name].source}"
                )
        if name in available_passes():
            raise PluginError(
                f"{self.source}: {kind} '{name}' clashes with a built-in pass or "
                "pipeline of the same name (rename it)"
            )

    def _check_new(self, name: str, kind: str, table: Mapping[str, _Entry],
                   builtin: set[str]) -> None:
        if name in builtin:
            raise PluginError(
                f"{self.source}: {kind} '{name}' clashes with a built-in {kind} of the "
                "same name (rename it)"
            )
        if name in table:
            raise PluginError(
                f"{self.source}: {kind} '{name}' is already registered by "
                f"{table[name].source}"
            )


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_plugins(files: Sequence[str] = (), entry_points: bool = True) -> PluginRegistry:
    """A registry with the entry points of `edge_opt.plugins` (if `entry_points`) and
    the plugin `files`, in that order, their pipelines checked."""
    registry = PluginRegistry()
    if entry_points:
        registry.load_entry_points()
    for path in files:
        registry.load_file(path)
    registry.check_pipelines()
    return registry


def split_plugin_arguments(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """The files of every `--load-plugin FILE` (or `--load-plugin=FILE`) anywhere in
    `argv`, and the other arguments."""
    files, rest = [], []
    arguments = iter(argv)
    for argument in arguments:
        if argument == OPTION:
            path = next(arguments, None)
            if path is None or path.startswith("-"):
                raise PluginError(f"{OPTION} needs a plugin file (a .py file)")
            files.append(path)
        elif argument.startswith(OPTION + "="):
            files.append(argument.removeprefix(OPTION + "="))
        else:
            rest.append(argument)
    return files, rest


def _import_file(file: Path, source: str) -> ModuleType:
    """Runs the plugin file as a module of its own (kept in `sys.modules` under a name
    derived from its absolute path, which dataclasses and `get_type_hints` need)."""
    resolved = file.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    name = f"edge_opt_plugin_{file.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise PluginError(f"{source}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001  (the plugin's error, in one line)
        if previous is None:
            del sys.modules[name]
        else:
            sys.modules[name] = previous
        raise PluginError(f"{source}{_where(e, resolved)}: cannot import: "
                          f"{_one_line(e)}") from None
    return module


def _call_register(register: Callable, plugin: Plugin, source: str,
                   file: Path | None) -> None:
    try:
        register(plugin)
    except PluginError:
        raise
    except Exception as e:  # noqa: BLE001  (the plugin's error, in one line)
        if file is None:
            raise PluginError(f"{source}: register failed: {_one_line(e)}"
                              f"{_where(e, None)}") from None
        raise PluginError(f"{source}{_where(e, file.resolve())}: register failed: "
                          f"{_one_line(e)}") from None


def _where(error: BaseException, file: Path | None) -> str:
    """`:LINE` of the innermost frame of the traceback in `file` (for a syntax error
    in the file, its line); when `file` is None, ` (at FILE:LINE)` of the innermost
    frame."""
    if isinstance(error, SyntaxError) and error.lineno is not None and (
        file is None or Path(error.filename or "").resolve() == file
    ):
        return f":{error.lineno}"
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        if file is None or Path(frame.filename).resolve() == file:
            if file is None:
                return f" (at {frame.filename}:{frame.lineno})"
            return f":{frame.lineno}"
    return ""


def _one_line(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg}"
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0]}" if first else type(error).__name__


def _label(value: object) -> str:
    return getattr(value, "__name__", None) or type(value).__name__
