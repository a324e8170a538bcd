"""C forms of the train kernels (`edge_kernels_train.h`)."""

from __future__ import annotations
