"""Named pipelines and pass-pipeline parsing.

A named pipeline is itself a `ModulePass` (so `-p infer` and `--pipeline infer` are the
same thing and its options are typed dataclass fields parsed by xDSL), whose `passes()`
is the explicit list of pass instances it runs. The driver expands it to that list so
that `--print-ir-after-all` shows every step and the module is verified between passes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.transforms.canonicalize import CanonicalizePass
from xdsl.transforms.common_subexpression_elimination import (
    CommonSubexpressionElimination,
)
from xdsl.transforms.dead_code_elimination import DeadCodeElimination
from xdsl.utils.exceptions import ArgSpecParseError

from edge_opt.ir.errors import UserError
from edge_opt.passes.options import EdgeOptPass


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
class InferPipeline(NamedPipeline):
    """Inference only: graph raising and clean-ups; nothing trains."""

    name = "infer"
    description = "inference only: raise-layer-norm, canonicalize, cse, dce"

    def passes(self) -> tuple[ModulePass, ...]:
        return (*_raise(), *_cleanup())


def _cleanup() -> tuple[ModulePass, ...]:
    return (
        CanonicalizePass(),
        CommonSubexpressionElimination(),
        DeadCodeElimination(),
    )


def _raise() -> tuple[ModulePass, ...]:
    """Graph-level raising of exporter idioms into fused ops (fewer, cheaper kernels and
    far fewer activations kept for training)."""
    from edge_opt.passes.raise_layer_norm import RaiseLayerNormPass

    return (RaiseLayerNormPass(),)


@dataclass(frozen=True)
class TrainingPipeline(NamedPipeline, ABC):
    """Options every training pipeline takes (see `autodiff`): the loss on the first
    output of `@forward` (`cross-entropy` against integer labels, or `mse` against
    `labels` of the output's type), the optimizer and its hyper-parameters. The batch
    size is the model's leading input dimension."""

    loss: Literal["cross-entropy", "mse"] = "cross-entropy"
    reduction: Literal["mean", "sum"] = "mean"
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def strategy(self) -> tuple[ModulePass, ...]:
        """The passes that choose what trains."""
        return ()

    def passes(self) -> tuple[ModulePass, ...]:
        from edge_opt.passes.autodiff import AutodiffPass

        autodiff = AutodiffPass(
            loss=self.loss,
            reduction=self.reduction,
            optimizer=self.optimizer,
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
        )
        return (*_raise(), *self.strategy(), autodiff, *_cleanup())


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
        from edge_opt.passes.select_last_layers import SelectLastLayersPass

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
        from edge_opt.passes.sparse_update import SparseUpdatePass

        return (
            SparseUpdatePass(
                budget_kib=self.budget_kib,
                calibration=self.calibration,
                loss=self.loss,
                seed=self.seed,
                channels=self.channels,
                optimizer=self.optimizer,
                momentum=self.momentum,
            ),
        )


PIPELINES: dict[str, Callable[[], type[NamedPipeline]]] = {
    "infer": lambda: InferPipeline,
    "train-full": lambda: TrainFullPipeline,
    "train-last": lambda: TrainLastPipeline,
    "train-sparse": lambda: TrainSparsePipeline,
}


def available_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Every pass usable in `-p`: xDSL's, edge-opt's and the named pipelines."""
    from xdsl.transforms import get_all_passes

    from edge_opt.ir.universe import EDGE_OPT_PASSES

    return {**get_all_passes(), **EDGE_OPT_PASSES, **PIPELINES}


def parse_pipeline(
    spec: str,
    passes: dict[str, Callable[[], type[ModulePass]]] | None = None,
) -> tuple[ModulePass, ...]:
    """Parses `"pass-a{opt=1},pass-b"` into pass instances; a bad spec or option is a
    `UserError` naming it."""
    registry = available_passes() if passes is None else passes
    try:
        return PassPipeline.parse_spec(registry, spec).passes
    except ArgSpecParseError as e:
        raise UserError(f"bad pipeline '{spec}': {e}") from None
    except ValueError as e:
        message = str(e)
        if message.startswith("Unrecognized passes"):
            message += " (see --list-passes and --list-pipelines)"
        raise UserError(f"bad pipeline '{spec}': {message}") from None


def expand(passes: Iterable[ModulePass]) -> tuple[ModulePass, ...]:
    """Replaces named pipelines by the passes they run, recursively."""
    result: list[ModulePass] = []
    for p in passes:
        if isinstance(p, NamedPipeline):
            result.extend(expand(p.passes()))
        else:
            result.append(p)
    return tuple(result)
