"""Importing ONNX models into the `nn` dialect.

    from edge_opt.ir.onnx_import import import_onnx
    module = import_onnx("network.onnx")                # verified, self-contained
    (logits,) = run(module, "forward", {"input": x})    # ONNX input names

`import_onnx` returns a verified `ModuleOp` holding one `nn.param` per parameter (with its
value inline; `edge_opt.ir.model_io.save_model` moves large values to the sidecar `.npz`)
and `func.func @forward`. Each argument and result of `@forward` carries the attribute
`nn.name = "<ONNX name>"` (`edge_opt.ir.session.NAME_ATTR`), so `run` accepts inputs by
their ONNX names. SSA values are named after the ONNX values they implement (sanitized;
see `value_hint`), the order of ops is a stable topological order of the ONNX nodes, and
the same ONNX file always prints the same module.

Parameters and constants — the rule
-----------------------------------
Only initializers can be parameters; every other constant (a `Constant` node, a folded
value) is an `nn.constant`. A float initializer that the graph reads becomes an
`nn.param` unless it is a literal of the computation:

- a rank-0 float initializer is a literal (the attention scale 0.125, Pow's exponent 2.0
  and the epsilon 1e-5 in the exported CCT layer norms are all rank 0); so is
- a one-element float initializer used only as Pow's exponent, or only as an operand of
  an Add whose result feeds nothing but Sqrt (the epsilon of a decomposed norm).

Every other float initializer is a parameter, including one-element ones such as the CCT
training fixtures' `classifier_attention_pool_bias` (shape [1], trained by all of them):
the exporters put every tensor of the model's state into initializers, so a rank >= 1
float initializer is state unless its use says otherwise. Parameters are trainable,
except those that only serve as `BatchNormalization` running mean or variance (inputs 3
and 4), which are `trainable = false`. Integer and boolean initializers are constants
(shape arguments, mostly folded away). Graph inputs that have an initializer of the same
name (older exporters list the weights as inputs, e.g. Autoencoder1D) are initializers,
not function arguments. Unused initializers are dropped.

An `Identity` (or inference `Dropout`) of a parameter is that parameter: TinyViT's
exporter ties equal-valued tensors through `Identity` nodes, and the import keeps them
tied (one parameter, as in the ONNX file; its parameter count, 1,406, matches the
reference).

Parameter names: every character outside `[A-Za-z0-9_]` becomes `_`, a leading digit gets
a `p_` prefix (`classifier.fc.weight` -> `classifier_fc_weight`, `onnx::MatMul_943` ->
`onnx__MatMul_943`). Names that need no change keep it; a sanitized name that collides
gets the first free suffix `_1`, `_2`, ...; `forward` is reserved for the function.

Constant folding
----------------
A node whose inputs are all constants (initializers that are not parameters, `Constant`
nodes, folded values) is evaluated at import time with `onnx.reference.ReferenceEvaluator`
and produces no op. `Shape` and `Size` of any other value fold to its static shape (every
type here is static), which removes the `Shape -> Slice/Gather -> Concat -> Reshape`
chains of exporters. Parameters are never folded: a `Transpose` of a weight stays an op,
so the weight stays trainable.

Supported ops
-------------
Default domain, opsets 7-22 (tested: 12-20): Conv, ConvTranspose (1-D and 2-D; 1-D ops
become the 2-D op on a height-1 tensor between `nn.unsqueeze` and `nn.squeeze`), Gemm,
MatMul, Add, Sub, Mul, Div, Pow, Relu, Gelu, Erf, Sqrt, Exp, Log, Neg, Sigmoid, Tanh,
HardSwish, Softmax, LogSoftmax, LayerNormalization, BatchNormalization (inference),
MaxPool, AveragePool (1-D, 2-D), GlobalAveragePool, Reshape, Transpose, Flatten, Squeeze,
Unsqueeze, Concat, Slice, Gather (constant indices), ReduceMean, ReduceSum, Constant,
Identity, Dropout, Shape, Size; plus any op the reference evaluator can fold. `com.microsoft`: Gelu (exact) and FastGelu
(tanh form, optional bias). `auto_pad` NOTSET, VALID, SAME_UPPER and SAME_LOWER.

Where the ONNX semantics depend on the opset they follow the model's opset: Softmax and
LogSoftmax before 13 flatten the input to 2-D at `axis` (lowered to reshape, softmax over
axis 1, reshape back), from 13 on they act on one axis; Squeeze/Unsqueeze/ReduceSum take
`axes` from an attribute before 13 and from an input after; ReduceMean from 18; Slice
from 10.

Deliberate extensions: Gemm accepts operands of rank > 2 as a batched product (Deeploy's
`CCT_FP32_CCT_2_32_32_128` fuses MatMul + Add into such a Gemm, which onnxruntime
rejects); LayerNormalization is accepted below opset 17 (onnxruntime's contrib op of the
same name, used by the opset-12 CCT models). Empty tensors are not supported.

Errors
------
Every node that cannot be imported — an op type without a lowering, an attribute value
or a non-constant shape argument we do not support — is collected, and one
`UnsupportedOnnxError` lists them all, grouped by op type with counts and a node name
each (nodes that only read the value of an unimportable node are not reported again).
A file that is missing or not an ONNX model, or a graph that is inconsistent (an
input nobody produces), raises `ModelFileError`; a graph input with a dynamic dimension
and no entry in `input_shapes` raises `UserError`.

Code
----
`importer` holds the entry point and the `_Importer` (loading, topological order,
parameters and constants, folding, error collection); `lowerings/` holds one module per
op family (`elementwise`, `linear`, `conv_pool`, `norms`, `shape_ops`, `identities`),
each registering its lowerings in the table of `registry`; `names` holds the naming
rules and `values` the import-time values.
"""

from edge_opt.ir.onnx_import.errors import UnsupportedOnnxError
from edge_opt.ir.onnx_import.importer import (
    FUNCTION_NAME,
    MAX_OPSET,
    MIN_OPSET,
    OnnxImportWarning,
    import_onnx,
    import_onnx_with_summary,
)
from edge_opt.ir.onnx_import.initializers import Decision, ImportSummary
from edge_opt.ir.onnx_import.names import sanitize_name, value_hint

__all__ = [
    "FUNCTION_NAME",
    "Decision",
    "ImportSummary",
    "OnnxImportWarning",
    "import_onnx_with_summary",
    "MAX_OPSET",
    "MIN_OPSET",
    "UnsupportedOnnxError",
    "import_onnx",
    "sanitize_name",
    "value_hint",
]
