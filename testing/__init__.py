"""Property-test harness: random well-typed `nn` models, and a check that a pass keeps
the meaning of a module.

This is how edge-opt checks its passes (BRIEF section 5: "pass equivalence by
interpretation"), and it is part of the package so that users fuzz their own passes the
same way:

    from hypothesis import given
    from edge_opt.testing import assert_pass_preserves_semantics, random_models

    @given(random_models(max_ops=6))
    def test_my_pass(model):
        assert_pass_preserves_semantics(MyPass(), model.module, model.inputs)

`random_models` draws random DAGs over every op of the `nn` dialect with consistent
shapes; `assert_pass_preserves_semantics` applies a pass (or pipeline) to a copy,
verifies after every pass, interprets both modules on the same inputs and compares every
output and the parameter state after the call.

How the strategy works. It keeps a pool of the values built so far (function inputs
and op results) and, for each op it draws, picks operands from the pool (the newest
value half the time, else by distance from the newest, so graphs are chains of layers
and a shrunk graph is one) and adapts them: a conv or pool takes a value that is
already NCHW when it can (so `max_pool2d(relu(conv2d(x)))` occurs), else reshapes one
(the reshape joins the pool), a binary op resizes the other operand into a shape that
broadcasts (half the time a per-channel operand, half of those bias parameters), and a
linear layer comes, where `add` is drawn too, as a bias-less one followed by an `add`
of a bias parameter one time in three (as exporters write a linear of a 3-D input). Three in four
results nobody uses are returned, the others left dead. Every op is evaluated as it is built (with the interpreter's own
implementations), so the strategy knows the actual values and keeps them tame:
operands larger than `_BOUND` pass through `tanh` first, `log`/`sqrt`/`pow`/`div` get
positive or non-small operands (through `exp(tanh(x))` or `sigmoid(x) + 0.5` when
needed), and normalisations get inputs whose normalised groups are not almost
constant. Such glue ops (reshape, slice, concat, tanh, exp, sigmoid, add of a
constant) appear even when `ops` does not list them. Half the inputs are centred
at -3 or 3 rather than 0, so that windows of one sign occur. All numbers (inputs, parameter
values, constants) come from NumPy generators seeded by drawn integers, one per
tensor, so shrinking the structure keeps the other values.

Code: `strategies` holds `random_models` and `RandomModel`, `generators` one generator
per op (and `ALL_OPS`), `builder` the function body under construction that they share,
`forward_builder` a hand-written `@forward` (`ForwardBuilder`), `equivalence` the check (`assert_pass_preserves_semantics`, `random_inputs`,
`apply_passes`), `campaign` the fuzzing campaigns of `edge-opt fuzz` (`run_campaign`
with a property such as `equivalence_property`) and `reduce` the reducer of failing
models. A plugin's op generator (`Generator`) receives the `ModelBuilder`: `pick()`
an operand, `param(...)`, `constant(...)`, `integer`/`coin`/`choice` to draw, `emit(op)`.
"""

from edge_opt.testing.builder import Generator, Trainable
from edge_opt.testing.builder import _Builder as ModelBuilder
from edge_opt.testing.campaign import (
    Campaign,
    CampaignResult,
    Failure,
    Property,
    equivalence_property,
    run_campaign,
)
from edge_opt.testing.equivalence import (
    DEFAULT_TOLERANCES,
    PassOrPipeline,
    apply_passes,
    assert_pass_preserves_semantics,
    random_inputs,
)
from edge_opt.testing.forward_builder import ForwardBuilder
from edge_opt.testing.generators import ALL_OPS, active_generators, extra_generators
from edge_opt.testing.strategies import DType, RandomModel, random_models

__all__ = [
    "ALL_OPS",
    "DEFAULT_TOLERANCES",
    "Campaign",
    "CampaignResult",
    "DType",
    "Failure",
    "ForwardBuilder",
    "Generator",
    "ModelBuilder",
    "PassOrPipeline",
    "Property",
    "RandomModel",
    "Trainable",
    "active_generators",
    "apply_passes",
    "assert_pass_preserves_semantics",
    "equivalence_property",
    "extra_generators",
    "random_inputs",
    "random_models",
    "run_campaign",
]
