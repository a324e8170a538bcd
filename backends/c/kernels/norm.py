"""C forms of the norm kernels (`edge_kernels_norm.h`)."""

from __future__ import annotations
