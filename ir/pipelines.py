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


class NamedPipeline(ModulePass, ABC):
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
    """Inference only: graph clean-ups (canonicalize, cse, dce); nothing trains."""

    name = "infer"
    description = "inference only: canonicalize, cse, dce"

    def passes(self) -> tuple[ModulePass, ...]:
        return (
            CanonicalizePass(),
            CommonSubexpressionElimination(),
            DeadCodeElimination(),
        )


PIPELINES: dict[str, Callable[[], type[NamedPipeline]]] = {
    "infer": lambda: InferPipeline,
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
