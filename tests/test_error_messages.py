"""Errors keep their reason: a type the op does not take is named with the op and
its place, from MLIR text and from ONNX alike."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from edge_opt.tools.driver import main

INTEGER_MATMUL = """\
func.func @forward(%x: tensor<2x2xi32>, %w: tensor<2x2xi32>) -> tensor<2x2xi32> {
  %y = nn.matmul %x, %w : (tensor<2x2xi32>, tensor<2x2xi32>) -> tensor<2x2xi32>
  func.return %y : tensor<2x2xi32>
}
"""


def test_integer_matmul_in_mlir_names_the_op_and_the_type(tmp_path: Path, capsys):
    model = tmp_path / "m.mlir"
    model.write_text(INTEGER_MATMUL)
    assert main([str(model)]) == 1
    err = capsys.readouterr().err
    assert "m.mlir:2:3" in err
    assert "nn.matmul: an operand or result has an unsupported type (i32 is not allowed" in err


def test_integer_matmul_in_onnx_keeps_the_reason(tmp_path: Path, capsys):
    values = [helper.make_tensor_value_info(n, TensorProto.INT32, [2, 2]) for n in "aby"]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "g", values[:2], values[2:]
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    assert main([str(model)]) == 1
    err = capsys.readouterr().err
    assert "MatMul: operand 'lhs' (position 0) uses i32, which this op does not accept" in err
    assert "::" not in err
