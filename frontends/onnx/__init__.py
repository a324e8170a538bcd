"""Importing ONNX models into the `nn` dialect.

    from edge_opt.frontends.onnx import import_onnx
    module = import_onnx("network.onnx")                # verified, self-contained
    (logits,) = run(module, "forward", {"input": x})    # ONNX input names

`import_onnx` returns a verified `ModuleOp` holding one `nn.param` per parameter (with its
value inline; `edge_opt.ir.model_io.save_model` moves large values to the sidecar `.npz`)
and `func.func @forward`. Each argument and result of `@forward` carries the attribute
`nn.name = "<ONNX name>"` (`edge_opt.ir.session.NAME_ATTR`), so `run` accepts inputs by
their ONNX names. SSA values are named after the ONNX values they implement (sanitized;
see `value_hint`), the order of ops is a stable topological order of the ONNX nodes, and
the same ONNX file always prints the same module.

Initializers — the rule
-----------------------
Only initializers can be parameters; every other constant (a `Constant` node, a folded
value) is an `nn.constant`. What an initializer becomes depends on where its value is
read, looking through views (Identity, Dropout, Transpose, Reshape, Squeeze, Unsqueeze,
Flatten, Expand, Cast, Slice, Split, Tile: a transposed weight is a weight). A *layer
role* is the weight or bias of Conv, ConvTranspose and Gemm, input 1 of MatMul, the scale
and bias of LayerNormalization, BatchNormalization, GroupNormalization and
InstanceNormalization, PRelu's slope, Gather's table, and an Add/Sub operand next to the
result of a MatMul, Gemm, Conv or ConvTranspose (a decomposed linear layer's bias). In
order:

1. an initializer with the name of a graph input and no layer role: the graph input wins
   (onnxruntime treats such an initializer as the input's default and uses the feed); it
   stays an argument of `@forward`. With a layer role it is a parameter (older exporters
   list every weight as an input, e.g. Autoencoder1D);
2. read by nothing (or only by Shape/Size) and not a graph output: dropped;
3. integer or boolean: a constant (shape and index arguments, mostly folded away);
4. rank 0: a constant (a literal: the attention scale 0.125, Pow's 2.0 and the epsilon
   1e-5 in the exported CCT layer norms are rank 0);
5. in a layer role: a trainable parameter;
6. only BatchNormalization's running mean or variance (inputs 3, 4): a frozen parameter
   (`trainable = false`);
7. one element: a constant — a scale, an exponent, an epsilon, a bound (the dynamo
   exporter writes the attention scale as shape [1]). A one-element *bias* stays a
   parameter by 5 (CCT's `classifier_attention_pool_bias`, trained by its fixtures);
8. first dimension equal to the batch size B > 1 (the first dimension every graph input
   of rank >= 2 shares): a frozen parameter. The dynamo exporter constant-folds
   `cls_token.expand(B, -1, -1)` into such a tensor; trained, it would give each sample
   its own class token, which is not the model. (With B = 1 it is the parameter itself
   and trains by 9.)
9. otherwise a trainable parameter: the exporters put the model's state into
   initializers (positional embeddings, class tokens, layer scales, weights of ops not
   listed above).

`import_onnx(..., trainable=REGEX)` (`edge-opt import --trainable REGEX`) makes every
float initializer whose whole ONNX or sanitized name matches a trainable parameter,
whatever the rule says (a pattern that matches nothing is an error). To freeze
parameters, use the `freeze` pass. `import_onnx_with_summary` returns, with the module,
an `ImportSummary`: every initializer's decision and its reason (what `edge-opt import`
prints).

Shared initializers
-------------------
PyTorch's TorchScript exporter (eval mode) merges equal-valued tensors — every zero bias,
every unit norm scale, the layers of a freshly built `nn.TransformerEncoder` — into one
initializer and records each merged tensor as `Identity(kept) -> <its own name>`. Trained
as one, those layers all move by the sum of their gradients (TinyViT_Demo ties 43 norm
scales and biases, conv biases and MLP biases to 5 initializers). A genuinely shared
parameter (tied weights, a module called twice) is instead read directly by several
nodes, with no Identity, by every exporter — but so are initializers an ONNX optimizer
merged. Hence `untie` (CLI flags in brackets):

- `merged` (default): each such Identity output becomes a parameter of its own, named by
  the Identity's output (the PyTorch name) with the kept tensor's value. This is what the
  file records: the exporter says these were distinct tensors. (An Identity whose output
  is a graph output stays an alias.)
- `all` (`--untie-shared`): also give every further node that reads an initializer
  directly its own copy (`<name>_1`, `<name>_2`, ...). Sharing after a view (one
  Transpose read by two layers) is not untied.
- `none` (`--keep-shared`): keep the file's sharing (TinyViT then has 1,406 values,
  Deeploy's count).

A trainable parameter that still feeds several layers is reported as a warning
(`OnnxImportWarning`; `edge-opt: warning: ...` on the command line) naming it and its
layers. The CCT training fixtures have no shared initializer, so every choice leaves
them as they were.

Names
-----
Parameter names: every character outside `[A-Za-z0-9_]` (non-ASCII ones too) becomes
`_`, a leading digit gets a `p_` prefix (`classifier.fc.weight` -> `classifier_fc_weight`,
`onnx::MatMul_943` -> `onnx__MatMul_943`). Names that need no change keep it; a sanitized
name that collides gets the first free suffix `_1`, `_2`, ...; `forward` and
`train_step` are reserved for the functions. Inputs and outputs keep their ONNX names
in `nn.name` (any Unicode; xDSL prints non-ASCII ones as byte escapes, and
`edge_opt.ir.session` reads them back). The C backend makes its own C names from these
(see docs/c-backend.md).

External data: a model file's external data is read from the file's directory; a model
given as bytes or a `ModelProto` reads it from `base_dir` (an error without one), never
from the current directory.

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
Default domain, opsets 7-24 (tested: 7 and 10-24): Conv, ConvTranspose (1-D and 2-D; 1-D
ops become the 2-D op on a height-1 tensor between `nn.unsqueeze` and `nn.squeeze`),
Gemm, MatMul, the element-wise ops of `edge_opt.support.elementwise` (ELEMENTWISE_OPS),
PRelu, Softmax, LogSoftmax, LayerNormalization, BatchNormalization (inference), GroupNormalization,
InstanceNormalization, MaxPool, AveragePool (1-D, 2-D), GlobalAveragePool,
GlobalMaxPool, Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Concat, Slice, Gather
(constant indices), Expand, Pad, ReduceMean, ReduceSum, Constant, Identity, Dropout (the
identity in both modes; a used mask output is all true), Shape, Size; plus any op the
reference evaluator can fold. `com.microsoft`: Gelu (exact) and FastGelu (tanh form,
optional bias). `auto_pad` NOTSET, VALID, SAME_UPPER and SAME_LOWER.

Where the ONNX semantics depend on the opset they follow the model's opset: Softmax and
LogSoftmax before 13 flatten the input to 2-D at `axis` (lowered to reshape, softmax over
axis 1, reshape back), from 13 on they act on one axis; Squeeze/Unsqueeze/ReduceSum take
`axes` from an attribute before 13 and from an input after; ReduceMean from 18; Slice
from 10; Clip's bounds and Pad's pads and value are attributes before 11 and inputs from
11 on (Pad's `axes` from 18, its `wrap` mode from 19); GroupNormalization's scale and bias
are per group before 21 and per channel from 21.

Lowerings to other ops: PRelu is `relu(x) + slope * -relu(-x)` (exact; the slope stays a
trainable parameter); InstanceNormalization is `nn.group_norm` with one group per
channel; GlobalMaxPool is `nn.max_pool2d` over the whole image (two pools, rows then
columns, beyond `train.MAX_POOL_WINDOW` positions); Pad's reflect, edge and wrap modes
are slices of the input concatenated to it, negative pads an `nn.slice` first.

Deliberate extensions: Gemm accepts operands of rank > 2 as a batched product (Deeploy's
`CCT_FP32_CCT_2_32_32_128` fuses MatMul + Add into such a Gemm, which onnxruntime
rejects); LayerNormalization is accepted below opset 17 (onnxruntime's contrib op of the
same name, used by the opset-12 CCT models). Empty tensors are not supported.

Errors
------
Every node that cannot be imported — an op type without a lowering, an attribute value
or a non-constant shape argument we do not support — is collected, and one
`UnsupportedOnnxError` lists them all, grouped by op type with counts and a node name
each. Nodes that read the value of an unimportable node are not reported again if they
have a lowering; those without one that would fold to constants once their inputs
import (a `Shape` or `Cast` of an unsupported op's result) are listed apart, after the
real blockers (`UnsupportedOnnxError.downstream`).
A file that is missing or not an ONNX model, or a graph that is inconsistent (an
input nobody produces), raises `ModelFileError`; a graph input with a dynamic dimension
and no entry in `input_shapes` raises `UserError`.

Code
----
`importer` holds the entry point and the `Importer` (loading, topological order,
folding, error collection); `initializers` decides what each initializer becomes and
unties shared ones (the rule above); `lowerings/` holds one module per
op family (`elementwise`, `linear`, `conv_pool`, `norms`, `shape_ops`, `identities`),
each registering its lowerings in the table of `registry`; `names` holds the naming
rules and `values` the import-time values.
"""

from edge_opt.frontends.onnx.errors import UnsupportedOnnxError
from edge_opt.frontends.onnx.importer import (
    FUNCTION_NAME,
    MAX_OPSET,
    MIN_OPSET,
    OnnxImportWarning,
    import_onnx,
    import_onnx_with_summary,
)
from edge_opt.frontends.onnx.initializers import Decision, ImportSummary
from edge_opt.frontends.onnx.names import sanitize_name, value_hint
from edge_opt.support.elementwise import BINARY, UNARY

__doc__ = (__doc__ or "").replace(
    "ELEMENTWISE_OPS", ", ".join(row.onnx for row in (*BINARY, *UNARY) if row.onnx)
)

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
