"""The registry of passes: every edge-opt pass and named pipeline by name, and the
parser of pipeline specs (`"pass-a{opt=1},pass-b"`).

Keys are always the pass's own `name` (a convention test checks it). The driver, the
`xdsl.universe` entry point and the property-test harness all read these tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from xdsl.passes import ModulePass, PassPipeline
from xdsl.transforms import get_all_passes
from xdsl.utils.arg_spec import ArgSpec, PipelineLexer, SpecTokenKind
from xdsl.utils.arg_spec import parse_pipeline as parse_arg_specs
from xdsl.utils.exceptions import ArgSpecParseError

from edge_opt.passes.autodiff import AutodiffPass
from edge_opt.passes.batch_norm_to_group_norm import BatchNormToGroupNormPass
from edge_opt.passes.bufferize import BufferizePass
from edge_opt.passes.fold_batch_norm import FoldBatchNormPass
from edge_opt.passes.freeze import FreezePass
from edge_opt.passes.fuse_attention_weights import FuseAttentionWeightsPass
from edge_opt.passes.fuse_weight_updates import FuseWeightUpdatesPass
from edge_opt.passes.insert_dma import InsertDmaPass
from edge_opt.passes.insert_lora import InsertLoraPass
from edge_opt.passes.lower_attention import LowerAttentionPass
from edge_opt.passes.lower_to_buffers import LowerToBuffersPipeline
from edge_opt.passes.merge_lora import MergeLoraPass
from edge_opt.passes.pipelines import (
    InferPipeline,
    NamedPipeline,
    TrainFullPipeline,
    TrainLastPipeline,
    TrainLoraPipeline,
    TrainSparsePipeline,
)
from edge_opt.passes.plan_memory import PlanMemoryPass
from edge_opt.passes.pool_before_activation import PoolBeforeActivationPass
from edge_opt.passes.raise_attention import RaiseAttentionPass
from edge_opt.passes.raise_layer_norm import RaiseLayerNormPass
from edge_opt.passes.recompute import RecomputePass
from edge_opt.passes.reorder_for_memory import ReorderForMemoryPass
from edge_opt.passes.rules import ApplyRulesPass
from edge_opt.passes.select_last_layers import SelectLastLayersPass
from edge_opt.passes.sparse_update import SparseUpdatePass
from edge_opt.passes.tile_attention_depth_first import TileAttentionDepthFirstPass
from edge_opt.passes.tile_l1 import TileL1Pass
from edge_opt.support.errors import UserError


def _by_name(classes: Iterable[type[ModulePass]]) -> dict[str, Callable[[], type[ModulePass]]]:
    return {cls.name: (lambda cls=cls: cls) for cls in classes}


EDGE_OPT_PASSES: dict[str, Callable[[], type[ModulePass]]] = _by_name([
    ApplyRulesPass,
    AutodiffPass,
    BatchNormToGroupNormPass,
    BufferizePass,
    FoldBatchNormPass,
    FreezePass,
    FuseAttentionWeightsPass,
    FuseWeightUpdatesPass,
    InsertDmaPass,
    InsertLoraPass,
    MergeLoraPass,
    LowerAttentionPass,
    PlanMemoryPass,
    PoolBeforeActivationPass,
    RaiseAttentionPass,
    RecomputePass,
    ReorderForMemoryPass,
    RaiseLayerNormPass,
    SelectLastLayersPass,
    SparseUpdatePass,
    TileAttentionDepthFirstPass,
    TileL1Pass,
])
"""Our passes by name."""

PIPELINES: dict[str, Callable[[], type[ModulePass]]] = _by_name([
    InferPipeline,
    TrainFullPipeline,
    TrainLastPipeline,
    TrainSparsePipeline,
    TrainLoraPipeline,
    LowerToBuffersPipeline,
])
"""The named pipelines by name."""


PassFactories = Mapping[str, Callable[[], type[ModulePass]]]

_EXTRA_PASSES: ContextVar[tuple[PassFactories, PassFactories]] = ContextVar(
    "edge_opt_extra_passes", default=({}, {})
)
"""Plugin passes and named pipelines active in this context (see `extra_passes`)."""


@contextmanager
def extra_passes(passes: PassFactories, pipelines: PassFactories) -> Iterator[None]:
    """Within the block, `available_passes` and `named_pipelines` include `passes` and
    `pipelines` too (a plugin's). Scoped to the current context (thread or task) and
    undone on exit, so nothing leaks between tests."""
    old_passes, old_pipelines = _EXTRA_PASSES.get()
    token = _EXTRA_PASSES.set(
        ({**old_passes, **passes}, {**old_pipelines, **pipelines})
    )
    try:
        yield
    finally:
        _EXTRA_PASSES.reset(token)


def named_pipelines() -> dict[str, Callable[[], type[ModulePass]]]:
    """`PIPELINES` and the active plugins' named pipelines."""
    return {**PIPELINES, **_EXTRA_PASSES.get()[1]}


def available_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Every pass usable in `-p`: xDSL's, edge-opt's, the named pipelines, and the
    active plugins' passes and pipelines."""
    passes, pipelines = _EXTRA_PASSES.get()
    return {**get_all_passes(), **EDGE_OPT_PASSES, **PIPELINES, **passes, **pipelines}


def spec_pipeline(name: str, spec: str, description: str) -> type[NamedPipeline]:
    """A named pipeline (without options) that runs the passes of `spec`, parsed when
    it runs (so it may name passes registered after it)."""

    def passes(self: NamedPipeline) -> tuple[ModulePass, ...]:
        return parse_pipeline(spec)

    namespace = {
        "name": name,
        "description": description or spec,
        "passes": passes,
        "__module__": __name__,
        "__doc__": f"The pipeline `{spec}`.",
    }
    title = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name))
    return dataclass(frozen=True)(type(f"{title}Pipeline", (NamedPipeline,), namespace))


def parse_pipeline(
    spec: str,
    passes: dict[str, Callable[[], type[ModulePass]]] | None = None,
) -> tuple[ModulePass, ...]:
    """Parses `"pass-a{opt=1},pass-b"` into pass instances; a bad spec or option (an
    unknown, repeated or out-of-range one) is a `UserError` naming it."""
    registry = available_passes() if passes is None else passes
    try:
        quoted = _quote_paths(_quote_exponents(spec))
        _check_repeated_options(quoted)
        return PassPipeline.parse_spec(registry, quoted).passes
    except ArgSpecParseError as e:
        raise UserError(f"bad pipeline '{spec}': {e}") from None
    except ValueError as e:
        message = str(e)
        if message.startswith("Unrecognized passes"):
            message = _unrecognized(spec, registry, message)
        raise UserError(f"bad pipeline '{spec}': {message}") from None


def _unrecognized(
    spec: str, registry: dict[str, Callable[[], type[ModulePass]]], message: str
) -> str:
    """xDSL's "Unrecognized passes" message, or, when the names are passes given where
    only named pipelines are accepted (`--pipeline freeze`), what to write instead."""
    names = [arg.name for arg in parse_spec_names(spec)]
    unknown = [n for n in names if n not in registry]
    if unknown and all(n in available_passes() for n in unknown):
        listed = ", ".join(unknown)
        return (
            f"{listed} {'is a pass' if len(unknown) == 1 else 'are passes'}, not a "
            f"named pipeline: give {'it' if len(unknown) == 1 else 'them'} with -p "
            "(see --list-pipelines for the named pipelines)"
        )
    return message + " (see --list-passes and --list-pipelines)"


def parse_spec_names(spec: str) -> list[ArgSpec]:
    return list(parse_arg_specs(spec))


_EXPONENT = re.compile(r"(?<=[=,])([-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)(?=[\s},]|$)")


def _quote_exponents(spec: str) -> str:
    """xDSL's pass-spec lexer reads `1e-3` as a word and `-1e-3` as `-1` followed by a
    word; quoted, both reach `EdgeOptPass.from_spec` as text, which reads floats."""
    return _EXPONENT.sub(r'"\1"', spec)


_BARE_VALUE = re.compile(r'(?<==)([^\s{}",=]+)(?=[\s},]|$)')
_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]*)?")


def _quote_paths(spec: str) -> str:
    """xDSL's pass-spec lexer has no word for a file name (`file=my.rules`,
    `file=dir/x.rules`); such a bare value is quoted, numbers are left alone."""
    def quote(match: re.Match[str]) -> str:
        value = match.group(1)
        if _NUMBER.fullmatch(value) or not any(c in value for c in "./\\~"):
            return value
        return f'"{value}"'

    return _BARE_VALUE.sub(quote, spec)


def _check_repeated_options(spec: str) -> None:
    """xDSL keeps the last of `{lr=0.1 lr=0.2}` silently; a repeated option (also as
    `budget-kib` and `budget_kib`) is an error here."""
    lexer = PipelineLexer(spec)
    pass_name, keys, depth, expect_key = "", set[str](), 0, False
    while (token := lexer.lex()).kind is not SpecTokenKind.EOF:
        kind = token.kind
        if depth == 0 and kind is SpecTokenKind.IDENT:
            pass_name = token.span.text
        elif kind is SpecTokenKind.L_BRACE:
            depth, keys, expect_key = depth + 1, set(), True
        elif kind is SpecTokenKind.R_BRACE:
            depth -= 1
        elif depth and kind is SpecTokenKind.SPACE:
            expect_key = True
        elif depth and expect_key and kind is SpecTokenKind.IDENT:
            key = token.span.text.replace("-", "_")
            if key in keys:
                raise ValueError(
                    f"option '{token.span.text}' of '{pass_name}' is given more than once"
                )
            keys.add(key)
            expect_key = False
        else:
            expect_key = False


def expand(passes: Iterable[ModulePass]) -> tuple[ModulePass, ...]:
    """Replaces named pipelines by the passes they run, recursively."""
    result: list[ModulePass] = []
    for p in passes:
        if isinstance(p, NamedPipeline):
            result.extend(expand(p.passes()))
        else:
            result.append(p)
    return tuple(result)
