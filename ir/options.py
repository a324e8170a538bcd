"""Shared base for edge-opt passes: option parsing and option rules.

xDSL parses `name{key=value ...}` into typed dataclass fields. On top of that, every
edge-opt pass (and named pipeline):

- accepts integers and exponent notation for float options (`lr=1`, `lr=1e-3`; xDSL's
  pass-spec lexer reads `1e-3` as a word, not a number);
- checks each option against the rule for its name in `OPTION_RULES` when it is built,
  so `lr=-1` or `momentum=2` is an error naming the pass, the option and the rule,
  wherever the pass comes from (`-p`, a pipeline's options, or Python).

One table of rules keyed by option name keeps the rule of `lr` the same in `autodiff`
and in every training pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal, Self, get_type_hints

from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import ArgSpec

from edge_opt.support.errors import UserError


class OptionError(UserError, ValueError):
    """An option value outside its rule. A `ValueError` too, so that the pipeline
    parser reports it like xDSL's own option errors, with the spec that was given."""


@dataclass(frozen=True)
class OptionRule:
    """A predicate on one option's value and the sentence that explains it."""

    holds: Callable[[float], bool]
    text: str


def _finite(x: float) -> bool:
    return math.isfinite(x)


POSITIVE = OptionRule(lambda x: _finite(x) and x > 0, "a finite number > 0")
NON_NEGATIVE = OptionRule(lambda x: _finite(x) and x >= 0, "a finite number >= 0")
FRACTION = OptionRule(lambda x: _finite(x) and 0 <= x < 1, "a number in [0, 1)")
UNIT_INTERVAL = OptionRule(lambda x: _finite(x) and 0 <= x <= 1, "a number in [0, 1]")
AT_LEAST_ONE = OptionRule(lambda x: x >= 1, "an integer >= 1")
NATURAL = OptionRule(lambda x: x >= 0, "an integer >= 0")
POWER_OF_TWO = OptionRule(
    lambda x: x >= 1 and (int(x) & (int(x) - 1)) == 0, "a power of two >= 1"
)

OPTION_RULES: dict[str, OptionRule] = {
    "lr": POSITIVE,
    "momentum": FRACTION,
    "weight_decay": NON_NEGATIVE,
    "beta1": FRACTION,
    "beta2": FRACTION,
    "epsilon": POSITIVE,
    "alpha": POSITIVE,
    "rank": AT_LEAST_ONE,
    "layers": AT_LEAST_ONE,
    "rows": AT_LEAST_ONE,
    "attention_rows": NATURAL,
    "seed": NATURAL,
    "budget_kib": POSITIVE,
    "alignment": POWER_OF_TWO,
    "l1_bytes": NATURAL,
    "bn_momentum": UNIT_INTERVAL,
    "accumulate": AT_LEAST_ONE,
    "exact_limit": AT_LEAST_ONE,
    "beam": AT_LEAST_ONE,
    "window": AT_LEAST_ONE,
    "max_extra_flops": NON_NEGATIVE,
    "groups": AT_LEAST_ONE,
    "chunk_bytes": AT_LEAST_ONE,
}
"""The rule of every numeric option, by field name (a convention test checks that
every numeric option of every pass has one)."""


def _as_float(value: object) -> object:
    """`1` and `"1e-3"` (how the lexer returns exponent notation) as floats; anything
    else unchanged, for xDSL to reject with its own message."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class EdgeOptPass(ModulePass):
    """A `ModulePass` whose float options also accept integers and exponent notation,
    and whose numeric options are checked against `OPTION_RULES`."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            rule = OPTION_RULES.get(f.name)
            if rule is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not rule.holds(value):
                raise OptionError(
                    f"{self.name}: option {f.name.replace('_', '-')}={value} is invalid: "
                    f"it must be {rule.text}"
                )

    @classmethod
    def from_spec(cls, spec: ArgSpec) -> Self:
        hints = get_type_hints(cls)
        parameters = {
            key: tuple(
                _as_float(v) if hints.get(key.replace("-", "_")) is float else v
                for v in values
            )
            for key, values in spec.parameters.items()
        }
        return super().from_spec(ArgSpec(spec.name, parameters))


# --- option groups ---------------------------------------------------------------------
# Each group is declared once, here, and mixed into every pass and pipeline that takes
# it; a pipeline hands a group to the pass it builds with `group_values`, so a default or
# a rule cannot drift between `autodiff`, `sparse-update` and the training pipelines.
# Mix groups in after the pass base, last group first (`class P(EdgeOptPass,
# OptimizerOptions, LossOptions)`): dataclass fields follow the reverse method
# resolution order, so the options are listed loss, optimizer, then the pass's own.


@dataclass(frozen=True)
class LossOptions:
    """The loss on the first output of `@forward`: `cross-entropy` (logits (N, C)
    against integer labels (N,)) or `mse` (against `labels` of the output's type),
    summed or averaged over the batch."""

    loss: Literal["cross-entropy", "mse"] = "cross-entropy"
    reduction: Literal["mean", "sum"] = "mean"


@dataclass(frozen=True)
class OptimizerOptions:
    """The optimizer and its scalars: `sgd` (with `momentum`, `nesterov`,
    `weight-decay`) or `adam` (`beta1`, `beta2`, `epsilon`, `weight-decay`); `lr`."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8


@dataclass(frozen=True)
class AttentionOptions:
    """How raised attention runs: `attention-rows` query rows per block of depth-first
    tiling (forward and the recomputing backward; 0: no tiling), and whether
    `fuse-attention-weights` runs (it fuses frozen projections where its cost formula
    says it pays)."""

    attention_rows: int = 0
    fuse_attention: bool = False


@dataclass(frozen=True)
class BatchOptions:
    """How the training step treats the batch. `accumulate=k`: as k micro-batches of
    N / k samples (forward, loss, backward each), the gradients summed, one update
    (the whole batch's step if no op couples samples: see
    `edge_opt.autodiff.micro_batches`). How it runs `nn.batch_norm`s that use running
    statistics:
    `bn=frozen` (default: normalise with the running statistics, as the deployed model
    does, and leave them unchanged; only scale and bias train), `bn=batch` (normalise
    with the batch's own statistics and differentiate through them, as PyTorch's train
    mode; running statistics unchanged) or `bn=batch-update` (as `batch`, and update the
    running statistics: `running = (1 - bn-momentum) running + bn-momentum batch`, the
    variance unbiased, PyTorch's convention and default 0.1). `bn-accumulate=exact`:
    with `accumulate` > 1, batch statistics of the whole batch by extra sweeps over the
    micro-batches (`edge_opt.autodiff.batch_statistics`); `reject` (default): batch
    statistics with `accumulate` > 1 are an error that lists the choices."""

    bn: Literal["frozen", "batch", "batch-update"] = "frozen"
    bn_momentum: float = 0.1
    accumulate: int = 1
    bn_accumulate: Literal["reject", "exact"] = "reject"


OPTION_GROUPS = (LossOptions, OptimizerOptions, AttentionOptions, BatchOptions)


def group_values(options: object, *groups: type) -> dict[str, Any]:
    """The values of `options` (a pass or pipeline) for the fields of `groups`, as
    keyword arguments of another pass that takes those groups."""
    return {f.name: getattr(options, f.name) for group in groups for f in fields(group)}
