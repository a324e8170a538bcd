"""Names of the imported module: parameter symbols and SSA name hints (the rules are in
the docstring of `edge_opt.frontends.onnx`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

RESERVED_SYMBOLS = frozenset({"forward", "train_step"})
"""Symbols of the functions a module has (`@forward`) or gets (`autodiff`'s
`@train_step`): no parameter takes them."""

_NON_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")
_INDEX_SUFFIX = re.compile(r"(_\d+)+$")


def sanitize_name(name: str) -> str:
    """Parameter symbol for an ONNX name: characters outside `[A-Za-z0-9_]` become `_`,
    a leading digit (or an empty name) gets a `p_` prefix."""
    name = _NON_IDENTIFIER.sub("_", name)
    if not name or name[0].isdigit():
        name = "p_" + name
    return name


def value_hint(name: str) -> str | None:
    """SSA name hint for an ONNX value name: sanitized as `sanitize_name`, without
    leading/trailing underscores and without a trailing `_<digits>` (xDSL drops that from
    hints anyway, and its printer appends its own `_1`, `_2` to repeated hints); None
    when no name starting with a letter is left (the printer then numbers the value)."""
    hint = _NON_IDENTIFIER.sub("_", name).strip("_")
    hint = _INDEX_SUFFIX.sub("", hint).rstrip("_")
    return hint if hint and not hint[0].isdigit() else None


def _unique_names(names: Sequence[str], reserved: set[str]) -> list[str]:
    """Symbols for `names` (ONNX names, in order): valid ones keep their name first, the
    others are sanitized and suffixed until unique."""
    taken = set(reserved)
    result: list[str | None] = [None] * len(names)
    for i, name in enumerate(names):
        if sanitize_name(name) == name and name not in taken:
            result[i] = name
            taken.add(name)
    for i, name in enumerate(names):
        if result[i] is not None:
            continue
        base = sanitize_name(name)
        candidate, suffix = base, 0
        while candidate in taken:
            suffix += 1
            candidate = f"{base}_{suffix}"
        result[i] = candidate
        taken.add(candidate)
    return [r for r in result if r is not None]
