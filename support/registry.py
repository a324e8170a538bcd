"""A table from op types to functions, filled by a decorator: how edge-opt registers a
gradient rule, a C emitter or a test's reference for each op it knows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F")


class OpTable(dict[type, F]):
    """`table.register(OpA, OpB)` decorates a function and enters it for each type."""

    def register(self, *op_types: type) -> Callable[[F], F]:
        def enter(f: F) -> F:
            for op_type in op_types:
                self[op_type] = f
            return f

        return enter
