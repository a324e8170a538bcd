"""Named pipelines and pass-pipeline parsing.

A named pipeline is itself a `ModulePass` (so `-p infer` and `--pipeline infer` are the
same thing and its options are typed dataclass fields parsed by xDSL), whose `passes()`
is the explicit list of pass instances it runs. The driver expands it to that list so
that `--print-ir-after-all` shows every step and the module is verified between passes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.transforms.canonicalize import CanonicalizePass
from xdsl.transforms.common_subexpression_elimination import (
    CommonSubexpressionElimination,
)
from xdsl.transforms.dead_code_elimination import DeadCodeElimination
from xdsl.utils.exceptions import PassFailedException

from edge_opt.ir.options import (
    AttentionOptions,
    BatchOptions,
    EdgeOptPass,
    LossOptions,
    OptimizerOptions,
    group_values,
)
from edge_opt.passes.autodiff import AutodiffPass
from edge_opt.passes.freeze import FreezePass
from edge_opt.passes.fuse_attention_weights import FuseAttentionWeightsPass
from edge_opt.passes.insert_lora import InsertLoraPass
from edge_opt.passes.raise_attention import RaiseAttentionPass
from edge_opt.passes.raise_layer_norm import RaiseLayerNormPass
from edge_opt.passes.select_last_layers import SelectLastLayersPass
from edge_opt.passes.sparse_update import SparseUpdatePass
from edge_opt.passes.tile_attention_depth_first import TileAttentionDepthFirstPass


class NamedPipeline(EdgeOptPass, ABC):
    """A pass made of passes; subclasses list them in `passes()`."""

    description: str = ""

    @abstractmethod
    def passes(self) -> tuple[ModulePass, ...]: ...

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for p in self.passes():
            p.apply(ctx, op)
            op.verify()


@dataclass(frozen=True)
class InferPipeline(NamedPipeline, AttentionOptions):
    """Inference only: graph raising and clean-ups; nothing trains. Options: the
    `AttentionOptions` group."""

    name = "infer"
    description = (
        "inference only: raise-layer-norm, raise-attention, "
        "[tile-attention-depth-first,] [fuse-attention-weights,] canonicalize, cse, dce"
    )

    def passes(self) -> tuple[ModulePass, ...]:
        return (*_raise(attention_rows=self.attention_rows),
                *_fusion(self.fuse_attention), *_cleanup())


def _cleanup() -> tuple[ModulePass, ...]:
    return (
        CanonicalizePass(),
        CommonSubexpressionElimination(),
        DeadCodeElimination(),
    )


def _raise(attention: bool = True, attention_rows: int = 0) -> tuple[ModulePass, ...]:
    """Graph-level raising of exporter idioms into fused ops (fewer, cheaper kernels and
    far fewer activations kept for training). Both raises compute the same function
    (no approximation, nothing dropped; on the Deeploy models bit for bit). With
    `attention_rows` > 0 the raised attention is tiled depth first
    (`tile-attention-depth-first{rows=attention_rows}`)."""
    if not attention:
        return (RaiseLayerNormPass(),)
    tile = (TileAttentionDepthFirstPass(rows=attention_rows),) if attention_rows else ()
    return (RaiseLayerNormPass(), RaiseAttentionPass(), *tile)


def _fusion(enabled: bool) -> tuple[ModulePass, ...]:
    return (FuseAttentionWeightsPass(),) if enabled else ()


@dataclass(frozen=True)
class TrainingPipeline(
    NamedPipeline, BatchOptions, AttentionOptions, OptimizerOptions, LossOptions, ABC
):
    """Options every training pipeline takes: the `LossOptions`, `OptimizerOptions` and
    `BatchOptions` (handed to `autodiff` whole) and `AttentionOptions` groups. The batch size is the
    model's leading input dimension. `fuse-attention-weights` runs after the strategy
    chose what trains."""

    raise_attention: ClassVar[bool] = True
    """Whether `raise-attention` runs first (a strategy that rewrites the projections
    of attention itself needs them unraised)."""

    def strategy(self) -> tuple[ModulePass, ...]:
        """The passes that choose what trains."""
        return ()

    def passes(self) -> tuple[ModulePass, ...]:
        autodiff = AutodiffPass(
            **group_values(self, LossOptions, OptimizerOptions, BatchOptions)
        )
        if self.attention_rows and not self.raise_attention:
            raise PassFailedException(
                f"{self.name}: attention-rows does not apply: this pipeline keeps "
                "attention unraised (its strategy rewrites the projections); tile "
                "with another pipeline, or leave attention-rows at 0"
            )
        raising = _raise(self.raise_attention, self.attention_rows)
        fusion = _fusion(self.fuse_attention)
        return (*raising, *self.strategy(), *fusion, autodiff, *_cleanup())


@dataclass(frozen=True)
class TrainFullPipeline(TrainingPipeline):
    """Trains every parameter the model marks trainable (all of an imported model's but
    batch-norm running statistics), with full backpropagation."""

    name = "train-full"
    description = "every trainable parameter, full backpropagation (BioTrain, TrainDeeploy)"


@dataclass(frozen=True)
class TrainLastPipeline(TrainingPipeline):
    """Trains the last `layers` parametrised layers (TrainDeeploy's linear probing is
    `layers=1`); backpropagation stops where the first trained layer is."""

    name = "train-last"
    description = "the last k parametrised layers (TrainDeeploy LP/FT)"

    layers: int = 1

    def strategy(self) -> tuple[ModulePass, ...]:
        return (SelectLastLayersPass(layers=self.layers),)


@dataclass(frozen=True)
class TrainSparsePipeline(TrainingPipeline):
    """Trains the layers that `sparse-update` selects under `budget-kib` of backward
    memory (TinyTrain-style: Fisher information on a calibration batch per unit of
    memory and compute cost; `calibration` is an .npz with the inputs and `labels`)."""

    name = "train-sparse"
    description = "layers chosen by importance per cost under a memory budget (TinyTrain)"

    budget_kib: float = 64.0
    calibration: str | None = None
    seed: int = 0
    channels: bool = True

    def strategy(self) -> tuple[ModulePass, ...]:
        return (
            SparseUpdatePass(
                budget_kib=self.budget_kib,
                calibration=self.calibration,
                seed=self.seed,
                channels=self.channels,
                **group_values(self, LossOptions, OptimizerOptions),
            ),
        )


@dataclass(frozen=True)
class TrainLoraPipeline(TrainingPipeline):
    """Trains low-rank adapters (`insert-lora`) on the linear-layer weights matching
    `targets`, with those weights frozen; of the other parameters only those matching
    `trainable` train (default: none). Runs `freeze` first (so that it sees the model's
    own parameters only), then `insert-lora`, then `autodiff`."""

    name = "train-lora"
    description = "low-rank adapters on linear layers, base frozen (LoRA, TrainDeeploy)"
    # insert-lora adapts the q/k/v/output projections as linear layers; it does not
    # see into an `nn.attention`, so attention stays unraised here.
    raise_attention: ClassVar[bool] = False

    rank: int = 4
    alpha: float = 8.0
    targets: str = ".*"
    init: Literal["kaiming", "gaussian"] = "kaiming"
    seed: int = 0
    trainable: str | None = None

    def strategy(self) -> tuple[ModulePass, ...]:
        freeze = (
            FreezePass(trainable=self.trainable)
            if self.trainable is not None
            else FreezePass(frozen=".*")
        )
        lora = InsertLoraPass(
            rank=self.rank, alpha=self.alpha, targets=self.targets, init=self.init,
            seed=self.seed,
        )
        return (freeze, lora)
