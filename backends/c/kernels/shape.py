"""C forms of the shape kernels (`edge_kernels_shape.h`)."""

from __future__ import annotations
