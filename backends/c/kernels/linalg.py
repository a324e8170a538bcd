"""C forms of the linalg kernels (`edge_kernels_linalg.h`)."""

from __future__ import annotations
