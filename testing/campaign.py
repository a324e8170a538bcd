"""Fuzzing campaigns: many random models against one property, with hypothesis's
search and shrinking, as `edge-opt fuzz` runs them (and as a library for users).

A *property* is a function of a `RandomModel` that raises `AssertionError` (or any
exception) when the model shows a bug, and `PassFailedException` when the code under
test refuses the model (a precondition; counted, not a bug). `equivalence_property`
is the property of `edge-opt fuzz PASS`: the pass keeps the meaning of `@forward`, or,
with a training pipeline, of `@train_step`; other checkers (the C backend's) plug in
the same way.

`run_campaign(campaign, property)` draws up to `campaign.examples` models with seed
`campaign.seed`; on the first failure hypothesis shrinks the model, and the result
holds the smallest failing model found (printed, with its inputs), so that the caller
can write a reproducer. Everything in a `CampaignResult` pickles, so shards of one
campaign can run in worker processes or on a Dask cluster.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.ir.model_io import parse_module, print_module
from edge_opt.ir.session import get_function
from edge_opt.support.dtypes import numpy_dtype, to_dense
from edge_opt.testing.builder import Trainable
from edge_opt.testing.draws import seed_only_draws
from edge_opt.testing.equivalence import (
    PassOrPipeline,
    apply_passes,
    assert_pass_preserves_semantics,
    expand_passes,
)
from edge_opt.testing.generators import active_generators
from edge_opt.testing.memory_claims import assert_memory_claims_hold
from edge_opt.testing.reduce import failure_of, reduce_module
from edge_opt.testing.strategies import DType, RandomModel, random_models

Property = Callable[[RandomModel], None]
"""Raises on a bug (AssertionError for a wrong result), `PassFailedException` when the
model does not fit the code under test (or calls `hypothesis.reject()`: the model does
not count towards the budget); returns None when the model passes."""

Progress = Callable[[str], None]
"""Called with "example" for each example drawn, "shrink" for each shrinking step."""


@dataclass(frozen=True)
class Campaign:
    """What to draw: `examples` models (a hypothesis budget) with seed `seed`, over
    `ops` (None: every op `random_models` knows) with at most `max_ops` drawn ops."""

    examples: int = 100
    seed: int = 0
    ops: tuple[str, ...] | None = None
    max_ops: int = 8
    trainable: Trainable = "mixed"
    dtype: DType = "f32"
    batch: tuple[int, ...] = (1, 2)
    """The sizes the inputs' leading (batch) axis is drawn from."""
    training: bool = False
    """Models for a training step: every parameter trainable, and models without
    parameters get a trainable scale on each input (`with_trainable_inputs`)."""
    shrink_steps: int = 25
    """At most this many hypothesis shrinking steps; the reducer takes it from there
    (hypothesis alone may spend minutes on a model whose ops are cheap to remove)."""
    focus: tuple[str, ...] = ()
    """Ops the code under test acts on (`touched_ops`): half of the models draw only
    these and up to three others, so that a pass that rewrites one op kind in fifty
    meets it often."""

    def models(self) -> st.SearchStrategy[RandomModel]:
        trainable = "all" if self.training else self.trainable
        models = random_models(ops=self.ops, max_ops=self.max_ops, trainable=trainable,
                               dtype=self.dtype, batch=self.batch)
        if self.focus:
            others = sorted(set(self.ops or active_generators()) - set(self.focus))
            extra = st.lists(st.sampled_from(others), max_size=3, unique=True) if (
                others) else st.just([])
            focused = extra.flatmap(lambda more: random_models(
                ops=(*self.focus, *more), max_ops=self.max_ops, trainable=trainable,
                dtype=self.dtype, batch=self.batch))
            models = st.one_of(focused, models)  # shrinks towards the focused ones
        return models.map(with_trainable_inputs) if self.training else models


@dataclass(frozen=True)
class Failure:
    """The smallest failing model found: its printed module (values inline), its
    inputs and why it fails."""

    message: str
    module_text: str
    inputs: dict[str, np.ndarray]
    op_count: int


@dataclass
class CampaignResult:
    examples: int = 0
    """Examples drawn and checked before the first failure."""
    refused: int = 0
    """Of those, how many the code under test refused (`PassFailedException`)."""
    rejected: int = 0
    """Models the property rejected (`hypothesis.reject()`), besides `examples`:
    hypothesis draws another model for each."""
    shrink_steps: int = 0
    seconds: float = 0.0
    search_seconds: float = 0.0
    """Of `seconds`, the time until the first failure (the rest shrinks it)."""
    op_counts: Counter[str] = field(default_factory=Counter)
    """How often each op occurs in the drawn models' `@forward`s (over all examples)."""
    failure: Failure | None = None
    stopped: bool = False
    """Ended early because another shard found a failure."""

    def record(self, model: RandomModel, error: BaseException, seconds: float) -> None:
        """Keeps `model` as the failure if it has no more ops than the one kept."""
        if self.failure is None:
            self.search_seconds = seconds
        count = forward_op_count(model.module)
        if self.failure is None or count <= self.failure.op_count:
            self.failure = Failure(failure_message(error), print_module(model.module),
                                   dict(model.inputs), count)

    def merge(self, other: CampaignResult) -> None:
        """Adds `other`'s figures; the first failure stays."""
        self.examples += other.examples
        self.refused += other.refused
        self.rejected += other.rejected
        self.shrink_steps += other.shrink_steps
        self.seconds = max(self.seconds, other.seconds)
        self.search_seconds = max(self.search_seconds, other.search_seconds)
        self.op_counts.update(other.op_counts)
        self.failure = self.failure or other.failure


class CampaignStopped(BaseException):
    """Raised inside the search to end it at once (hypothesis passes BaseExceptions
    through without shrinking): another shard failed, or the shrinking budget is
    spent (the smallest failing model so far is kept)."""


def forward_op_count(module: ModuleOp, function: str = "forward") -> int:
    """The ops of `@function`, without its `func.return`."""
    body = get_function(module, function).body
    return sum(1 for op in body.walk() if not isinstance(op, func.ReturnOp))


def _op_names(module: ModuleOp) -> Counter[str]:
    body = get_function(module, "forward").body
    return Counter(op.name for op in body.walk() if not isinstance(op, func.ReturnOp))


def run_campaign(
    campaign: Campaign,
    check: Property,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    reduce: bool = True,
) -> CampaignResult:
    """Runs `check` on the models of `campaign`; see the module docstring.
    `should_stop` is polled before each example (another shard failed). With
    `reduce`, the shrunk failing model is reduced further on the IR
    (`edge_opt.testing.reduce`)."""
    result = CampaignResult()
    started = time.perf_counter()

    @settings(
        max_examples=campaign.examples, deadline=None, database=None, derandomize=False,
        phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False,
    )
    @seed(campaign.seed)
    @given(campaign.models())
    def search(model: RandomModel) -> None:
        _account(result, campaign, model, progress, should_stop)
        try:
            check(model)
        except PassFailedException:
            if result.failure is None:
                result.refused += 1
        except UnsatisfiedAssumption:
            if result.failure is None:  # not an example after all
                result.examples -= 1
                result.op_counts -= _op_names(model.module)
                result.rejected += 1
            raise
        except Exception as e:
            result.record(model, e, time.perf_counter() - started)
            raise

    try:
        with seed_only_draws():
            search()
    except CampaignStopped:
        result.stopped = result.failure is None
    except Exception:
        if result.failure is None:  # not from the property: a strategy or plugin bug
            raise
    if result.failure is None:
        result.search_seconds = time.perf_counter() - started
    elif reduce:
        result.failure = _reduced(result.failure, check)
    result.seconds = time.perf_counter() - started
    return result


def _account(result: CampaignResult, campaign: Campaign, model: RandomModel,
             progress: Progress | None, should_stop: Callable[[], bool] | None) -> None:
    """Counts an example (before the first failure) or a shrinking step (after it);
    ends the search when another shard failed or the shrinking budget is spent."""
    if result.failure is None:
        if should_stop is not None and should_stop():
            raise CampaignStopped
        result.examples += 1
        result.op_counts.update(_op_names(model.module))
        event = "example"
    else:
        if result.shrink_steps >= campaign.shrink_steps:
            raise CampaignStopped
        result.shrink_steps += 1
        event = "shrink"
    if progress is not None:
        progress(event)


def _reduced(failure: Failure, check: Property) -> Failure:
    """`failure` after `reduce_module` (the module parses back: it was printed)."""
    module = parse_module(failure.module_text)
    error = failure_of(check, module, failure.inputs)
    if error is None:  # not reproducible from the text: keep what hypothesis found
        return failure
    module, error = reduce_module(check, module, failure.inputs, error)
    return Failure(failure_message(error), print_module(module), failure.inputs,
                   forward_op_count(module))


def failure_message(error: BaseException) -> str:
    """What a failure says: an assertion's message, else the exception and its
    notes."""
    if isinstance(error, AssertionError):
        return str(error)
    notes = "".join(f"\n{n}" for n in getattr(error, "__notes__", ()))
    return f"{type(error).__name__}: {error}{notes}"


def with_trainable_inputs(model: RandomModel) -> RandomModel:
    """`model` itself if it has a parameter, else a copy whose every input `xi` is
    first multiplied by a trainable parameter `@xi_scale` of ones (the same values, but
    something to train, so that `autodiff` has work)."""
    if any(isinstance(op, nn.ParamOp) for op in model.module.ops):
        return model
    module = model.module.clone()
    block = get_function(module, "forward").body.block
    params = []
    for arg in block.args:
        assert isinstance(arg.type, TensorType)
        name = f"{arg.name_hint or 'x'}_scale"
        ones = np.ones(arg.type.get_shape(), numpy_dtype(arg.type.element_type))
        params.append(nn.ParamOp(name, arg.type, True, to_dense(ones, arg.type)))
        load = nn.LoadOp(name, arg.type)
        scaled = nn.MulOp(arg, load)
        arg.replace_uses_with_if(scaled.result, lambda use, op=scaled: use.operation is not op)
        block.insert_ops_before([load, scaled], block.first_op)
    module.body.block.insert_ops_before(params, module.body.block.first_op)
    module.verify()
    return RandomModel(module, model.inputs)


# --------------------------------------------------------------------------------------
# The property of `edge-opt fuzz PASS`
# --------------------------------------------------------------------------------------

TRAIN_PIPELINE = "train-full{loss=mse lr=0.5}"
"""The training pipeline `--train` applies before the pass under test: every trainable
parameter, a mean squared error against labels of the first output's shape."""


def training_labels(module: ModuleOp) -> np.ndarray:
    """The labels a training check uses: standard normal values of the first output's
    shape and type, from a fixed seed (so a replay uses the same ones)."""
    output = get_function(module, "forward").function_type.outputs.data[0]
    array = np.random.default_rng(1).standard_normal(output.get_shape())
    return array.astype(numpy_dtype(output.element_type))


def equivalence_property(
    pass_or_pipeline: PassOrPipeline,
    train_pipeline: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Property:
    """The pass keeps the meaning of `@forward` on the model's inputs; with
    `train_pipeline` (e.g. `TRAIN_PIPELINE`), that pipeline runs first and the pass
    must keep the meaning of `@train_step` (loss and updated parameters) on the
    inputs and `training_labels`. A model the training pipeline refuses (nothing
    trainable reaches the loss) is refused. A pass that records a lower peak must
    also keep every in-place parameter update in place (`assert_memory_claims_hold`)."""

    def check(model: RandomModel) -> None:
        module, inputs, function = model.module, list(model.inputs.values()), "forward"
        if train_pipeline is not None:
            module = apply_passes(train_pipeline, model.module)
            inputs.append(training_labels(model.module))
            function = "train_step"
        after = assert_pass_preserves_semantics(pass_or_pipeline, module, inputs,
                                                function=function, rtol=rtol, atol=atol)
        assert_memory_claims_hold(module, after)
        assert_promises_hold(pass_or_pipeline, module, after)

    return check


def assert_promises_hold(pass_or_pipeline: PassOrPipeline, module: ModuleOp,
                         result: ModuleOp) -> None:
    """Each pass of `pass_or_pipeline` that has a `check_result(before, after)` method
    (returning the promises it broke besides the numbers, as messages: `recompute`
    adds only cheap ops unless told otherwise) keeps them on `module`, which the
    passes turned into `result`; in a pipeline of several passes each is checked on its
    own input and output, the passes applied again in turn. Raises AssertionError
    listing the broken ones."""
    passes = expand_passes(pass_or_pipeline)
    if not any(hasattr(p, "check_result") for p in passes):
        return
    problems: list[str] = []
    for p in passes:
        after = result if len(passes) == 1 else apply_passes(p, module)
        check = getattr(p, "check_result", None)
        if check is not None:
            problems += check(module, after)
        module = after
    assert not problems, "\n".join(problems)


def pass_changes(
    pass_or_pipeline: PassOrPipeline, train_pipeline: str | None = None
) -> Callable[[RandomModel], bool]:
    """Whether the pass changes a model (after `train_pipeline`), for `touched_ops`;
    a pass that raises on it counts as changing it."""

    def changes(model: RandomModel) -> bool:
        try:
            module = model.module
            if train_pipeline is not None:
                module = apply_passes(train_pipeline, module)
        except PassFailedException:
            return False
        try:
            after = apply_passes(pass_or_pipeline, module)
        except PassFailedException:
            return False
        except Exception:  # noqa: BLE001  (a crash is a change the campaign must see)
            return True
        return print_module(after) != print_module(module)

    return changes


def touched_ops(
    changes: Callable[[RandomModel], bool],
    campaign: Campaign,
    per_op: int = 3,
) -> tuple[str, ...]:
    """The ops of `campaign` (all by default) for which `changes` holds on one of
    `per_op` small models drawing only that op (with seed `campaign.seed`)."""
    names = campaign.ops or tuple(active_generators())
    touched = []
    for name in names:
        probe = replace(campaign, ops=(name,), max_ops=3, examples=per_op, focus=())
        if _any_model(probe, changes):
            touched.append(name)
    return tuple(touched)


class _Found(Exception):
    pass


def _any_model(campaign: Campaign, predicate: Callable[[RandomModel], bool]) -> bool:
    @settings(max_examples=campaign.examples, deadline=None, database=None,
              derandomize=False, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck),
              verbosity=Verbosity.quiet, print_blob=False)
    @seed(campaign.seed)
    @given(campaign.models())
    def probe(model: RandomModel) -> None:
        if predicate(model):
            raise _Found

    try:
        with seed_only_draws():
            probe()
    except _Found:
        return True
    return False


def replay(check: Property, module: ModuleOp, inputs: Mapping[str, np.ndarray]) -> None:
    """Runs `check` on one model (a reproducer), raising as in a campaign."""
    check(RandomModel(module, dict(inputs)))
