"""Small helpers shared by the lowerings."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_opt.ir import shapes


def _int_list(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def _normalize(axis: int, rank: int) -> int:
    return shapes.normalize_axis(int(axis), rank)

