"""SSA name hints made from symbol names: a quoted symbol (`@"a b"`) may hold characters
an SSA name may not, and xDSL rejects such a hint."""

from __future__ import annotations

import re

_INVALID = re.compile(r"[^A-Za-z0-9_$.-]")


def symbol_hint(name: str) -> str | None:
    """`name` as an SSA name hint: characters outside `[A-Za-z0-9_$.-]` become `_`; None
    (no hint: the printer numbers the value) if it is empty or starts with a digit."""
    hint = _INVALID.sub("_", name)
    return hint if hint and not hint[0].isdigit() else None
