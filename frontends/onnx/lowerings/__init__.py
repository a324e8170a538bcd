"""The lowerings of ONNX nodes to `nn` ops, one module per op family. Importing this
package registers every lowering in `edge_opt.frontends.onnx.registry` (a new family
module must be imported here).

A lowering is `lower(importer, node, inputs, attributes) -> outputs`: `inputs` holds the
values of the node's inputs (None for an absent optional input, padded with None so it
can be indexed freely), `outputs` the value of each output (None: not provided). It
raises `Unsupported` for something we do not support; the importer reports it.
"""

from edge_opt.frontends.onnx.lowerings import (  # noqa: F401 (registration)
    conv_pool,
    elementwise,
    identities,
    linear,
    norms,
    shape_ops,
)
