"""Shared base for edge-opt passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self, get_type_hints

from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import ArgSpec


@dataclass(frozen=True)
class EdgeOptPass(ModulePass):
    """A `ModulePass` whose float options also accept integers (`lr=1` as well as
    `lr=1.0`), which xDSL's option parser would reject."""

    @classmethod
    def from_spec(cls, spec: ArgSpec) -> Self:
        hints = get_type_hints(cls)
        parameters = {
            key: tuple(
                float(v)
                if hints.get(key.replace("-", "_")) is float
                and isinstance(v, int)
                and not isinstance(v, bool)
                else v
                for v in values
            )
            for key, values in spec.parameters.items()
        }
        return super().from_spec(ArgSpec(spec.name, parameters))
