"""Registries: the dialects and passes of edge-opt, for our driver and for `xdsl-opt`
(through the `xdsl.universe` entry point in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.context import Context
from xdsl.ir import Dialect
from xdsl.passes import ModulePass
from xdsl.universe import Universe


def _nn() -> Dialect:
    from edge_opt.dialects.nn import NN

    return NN


def _train() -> Dialect:
    from edge_opt.dialects.train import TRAIN

    return TRAIN


def _kernel() -> Dialect:
    from edge_opt.dialects.kernel import KERNEL

    return KERNEL


EDGE_OPT_DIALECTS: dict[str, Callable[[], Dialect]] = {
    "nn": _nn,
    "train": _train,
    "kernel": _kernel,
}

def _autodiff() -> type[ModulePass]:
    from edge_opt.passes.autodiff import AutodiffPass

    return AutodiffPass


def _freeze() -> type[ModulePass]:
    from edge_opt.passes.freeze import FreezePass

    return FreezePass


def _select_last_layers() -> type[ModulePass]:
    from edge_opt.passes.select_last_layers import SelectLastLayersPass

    return SelectLastLayersPass


def _sparse_update() -> type[ModulePass]:
    from edge_opt.passes.sparse_update import SparseUpdatePass

    return SparseUpdatePass


def _bufferize() -> type[ModulePass]:
    from edge_opt.passes.bufferize import BufferizePass

    return BufferizePass


def _plan_memory() -> type[ModulePass]:
    from edge_opt.passes.plan_memory import PlanMemoryPass

    return PlanMemoryPass


def _insert_lora() -> type[ModulePass]:
    from edge_opt.passes.insert_lora import InsertLoraPass

    return InsertLoraPass


def _merge_lora() -> type[ModulePass]:
    from edge_opt.passes.merge_lora import MergeLoraPass

    return MergeLoraPass


def _lower_attention() -> type[ModulePass]:
    from edge_opt.passes.lower_attention import LowerAttentionPass

    return LowerAttentionPass


def _raise_attention() -> type[ModulePass]:
    from edge_opt.passes.raise_attention import RaiseAttentionPass

    return RaiseAttentionPass


def _tile_attention_depth_first() -> type[ModulePass]:
    from edge_opt.passes.tile_attention_depth_first import TileAttentionDepthFirstPass

    return TileAttentionDepthFirstPass


def _fuse_attention_weights() -> type[ModulePass]:
    from edge_opt.passes.fuse_attention_weights import FuseAttentionWeightsPass

    return FuseAttentionWeightsPass


def _raise_layer_norm() -> type[ModulePass]:
    from edge_opt.passes.raise_layer_norm import RaiseLayerNormPass

    return RaiseLayerNormPass


EDGE_OPT_PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "autodiff": _autodiff,
    "bufferize": _bufferize,
    "freeze": _freeze,
    "fuse-attention-weights": _fuse_attention_weights,
    "insert-lora": _insert_lora,
    "merge-lora": _merge_lora,
    "lower-attention": _lower_attention,
    "plan-memory": _plan_memory,
    "raise-attention": _raise_attention,
    "raise-layer-norm": _raise_layer_norm,
    "select-last-layers": _select_last_layers,
    "sparse-update": _sparse_update,
    "tile-attention-depth-first": _tile_attention_depth_first,
}
"""Our passes by name (the key is always the pass's `name`)."""


def _universe() -> Universe:
    from edge_opt.ir.pipelines import PIPELINES

    return Universe(
        all_dialects=EDGE_OPT_DIALECTS, all_passes={**EDGE_OPT_PASSES, **PIPELINES}
    )


EDGE_OPT_UNIVERSE = _universe()


def make_context() -> Context:
    """A context with the upstream dialects our IR uses and all of ours loaded."""
    from xdsl.dialects.builtin import Builtin
    from xdsl.dialects.func import Func

    ctx = Context()
    for dialect in (Builtin, Func):
        ctx.load_dialect(dialect)
    for factory in EDGE_OPT_DIALECTS.values():
        ctx.load_dialect(factory())
    return ctx
