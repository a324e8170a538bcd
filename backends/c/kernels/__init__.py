"""C forms of the kernel ops, one module per runtime family (the same split as
`backends/c/runtime/edge_kernels_*.h`). Importing this package registers every emitter
in `edge_opt.backends.c.emitter.EMITTERS`."""

from edge_opt.backends.c.kernels import (  # noqa: F401
    conv_pool,
    elementwise,
    linalg,
    norm,
    shape,
    train,
)
