"""C forms of the conv_pool kernels (`edge_kernels_conv_pool.h`)."""

from __future__ import annotations
