"""The C sources of a planned module: `network.h` and `network.c`, every kernel op
printed by its emitter (importing `edge_opt.backends.c.kernels` registers them all)."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation

import edge_opt.backends.c.kernels  # noqa: F401  (registers the emitters)
import edge_opt.backends.c.tiles  # noqa: F401  (and those of the tile and DMA levels)
from edge_opt.backends.c import hyperparameters
from edge_opt.backends.c.emitter import (
    EMITTERS,
    param_symbol,
    print_network_c,
    print_network_h,
)
from edge_opt.backends.c.params_blob import (
    PARAMS_ASM,
    header_lines,
    loader_lines,
    params_blob,
)
from edge_opt.dialects import kernel


def emitters_missing() -> list[str]:
    """Kernel ops without a C emitter (a convention test lists the gaps). Tensor ops
    that are lowered to primitive ops before bufferization (`nn.attention`) have no
    kernel op, hence no emitter to miss."""
    return sorted(op.name for op in kernel.KERNEL_OPS if op not in EMITTERS)


def emit_sources(module: ModuleOp,
                 profile: dict[Operation, int] | None = None) -> dict[str, str | bytes]:
    """`network.h`, `network.c`, and the parameters' initial values: `params.bin` and
    `params.S`, which links it in; `profile` as `print_network_c`'s."""
    values = hyperparameters.hyperparameters(module)
    return {
        "network.h": print_network_h(
            module, header_lines(module) + hyperparameters.declarations(values)
        ),
        "network.c": print_network_c(
            module, hyperparameters.definitions(values, hyperparameters.has_momentum(module)),
            loader_lines(module, param_symbol), profile,
        ),
        "params.S": PARAMS_ASM,
        "params.bin": params_blob(module),
    }
