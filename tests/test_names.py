"""Names from a model that the generated files must survive (issue 10, item 8).

- Non-ASCII ONNX names: the imported `.mlir` reads back (xDSL prints them as byte
  escapes and parses them as bytes), the module prints identically, and `run` takes and
  gives arrays by the ONNX names.
- Names that are C keywords or the runtime's names (`int`, `main`, `train_step`,
  `labels`, `edge_copy`, `UNUSED`, `NULL`, ...) or that meet after sanitizing: the C
  compiles with `-Wall -Wextra -Werror` and its test passes against the interpreter.
- Long and unusual parameter names (300 characters, quotes, `a.b` next to `a_b`):
  `--dump-params` writes every parameter (hashed file names where needed) and each
  equals the interpreter's.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from c_project import assert_c_matches_interpreter
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edge_opt.backends.c.emitter import (
    c_identifier,
    is_reserved,
    param_symbol,
    unique_identifiers,
)
from edge_opt.backends.c.project import dump_file_names
from edge_opt.ir.context import make_context
from edge_opt.ir.model_io import load_model, parse_module, read_npz
from edge_opt.ir.session import get_function, input_names, params_of
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.tools.driver import main

ort.set_default_logger_severity(3)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def save(nodes, inputs: dict, outputs: list[str], initializers: dict, path: Path):
    graph = helper.make_graph(
        nodes,
        "names",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    onnx.save(model, path)
    return model


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make(directory: Path) -> str:
    result = subprocess.run(["make", "-C", str(directory), "host"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_non_ascii_names_round_trip(tmp_path, capsys):
    rng = np.random.default_rng(0)
    initializers = {
        "poids€": rng.standard_normal((3, 4)).astype(np.float32),
        "poids£": rng.standard_normal(3).astype(np.float32),  # sanitizes to the same
    }
    nodes = [helper.make_node("Gemm", ["entrée", "poids€", "poids£"], ["sortie✓"],
                              transB=1, name="couche₁")]
    model = save(nodes, {"entrée": (2, 4)}, ["sortie✓"], initializers, tmp_path / "m.onnx")
    feeds = {"entrée": rng.standard_normal((2, 4)).astype(np.float32)}
    reference = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]

    assert cli(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.mlir")],
               capsys)[0] == 0
    module = load_model(tmp_path / "m.mlir")
    assert input_names(get_function(module, "forward")) == ["entrée"]
    assert sorted(params_of(module)) == ["poids_", "poids__1"]
    # Read back and printed again: byte for byte the same file.
    code, _, err = cli([str(tmp_path / "m.mlir"), "-p", "cse", "-o",
                        str(tmp_path / "again.mlir")], capsys)
    assert code == 0, err
    assert (tmp_path / "again.mlir").read_bytes() == (tmp_path / "m.mlir").read_bytes()
    np.savez(tmp_path / "in.npz", **feeds)
    code, out, err = cli(["run", str(tmp_path / "again.mlir"), "--input",
                          str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz")], capsys)
    assert code == 0, err
    np.testing.assert_allclose(read_npz(tmp_path / "out.npz")["sortie✓"], reference,
                               rtol=1e-5, atol=1e-6)


def test_c_keywords_and_runtime_names_compile(tmp_path, capsys):
    """Every name below breaks C used as it is (a keyword, a runtime function or
    macro, the training step's own names), and `result_out` meets the C name of the
    output `result`."""
    rng = np.random.default_rng(1)
    initializers = {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in [("main", (3, 4)), ("train_step", (3,)), ("edge_copy", (3,)),
                            ("UNUSED", (3,)), ("args", (3,)), ("forward", (3,))]
    }
    nodes = [
        helper.make_node("Gemm", ["int", "main", "train_step"], ["h"], transB=1),
        helper.make_node("Add", ["h", "labels"], ["h1"]),
        helper.make_node("Mul", ["h1", "UNUSED"], ["h2"]),
        helper.make_node("Add", ["h2", "edge_copy"], ["h3"]),
        helper.make_node("Add", ["h3", "args"], ["h4"]),
        helper.make_node("Add", ["h4", "result_out"], ["result"]),
        helper.make_node("Mul", ["h4", "forward"], ["NULL"]),
    ]
    inputs = {"int": (2, 4), "labels": (2, 3), "result_out": (2, 3)}
    save(nodes, inputs, ["result", "NULL"], initializers, tmp_path / "m.onnx")
    assert cli(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.mlir")],
               capsys)[0] == 0
    # No parameter takes the name of a function (the module has or autodiff adds).
    assert {"train_step_1", "forward_1"} <= set(params_of(load_model(tmp_path / "m.mlir")))
    for pipeline in ("train-full", "infer"):
        project = tmp_path / pipeline
        code, _, err = cli([str(tmp_path / "m.mlir"), "--pipeline", pipeline, "--emit",
                            "c", "-o", str(project)], capsys)
        assert code == 0, err
        assert "OK" in make(project)
    header = (tmp_path / "train-full" / "network.h").read_text()
    assert "float train_step(const float *v_int, const float *labels, " \
        "const float *result_out, const int32_t *labels_1);" in header
    assert "void infer(const float *v_int, const float *labels, const float " \
        "*result_out, float *result_out_1, float *NULL_out);" in header


def _unusual_names_module():
    long = "w" * 300
    return parse_module(f"""
    nn.param trainable @"a.b" : tensor<3x4xf32> = dense<0.5> : tensor<3x4xf32>
    nn.param trainable @a_b : tensor<3xf32> = dense<0.1> : tensor<3xf32>
    nn.param trainable @"q\\"uote\\\\back" : tensor<3xf32> = dense<0.2> : tensor<3xf32>
    nn.param trainable @A_B : tensor<3xf32> = dense<0.3> : tensor<3xf32>
    nn.param trainable @{long} : tensor<3xf32> = dense<0.4> : tensor<3xf32>
    func.func @forward(%x: tensor<2x4xf32> {{nn.name = "x"}}) -> tensor<2x3xf32> {{
      %w = nn.load @"a.b" : tensor<3x4xf32>
      %b = nn.load @a_b : tensor<3xf32>
      %c = nn.load @"q\\"uote\\\\back" : tensor<3xf32>
      %d = nn.load @A_B : tensor<3xf32>
      %e = nn.load @{long} : tensor<3xf32>
      %y = nn.linear %x, %w, %b : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
      %y1 = nn.add %y, %c : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
      %y2 = nn.mul %y1, %d : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
      %y3 = nn.add %y2, %e : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
      func.return %y3 : tensor<2x3xf32>
    }}
    """)


def test_long_and_unusual_parameter_names_are_dumped(tmp_path):
    module = _unusual_names_module()
    for p in expand(parse_pipeline("train-full{lr=0.5 momentum=0.9}")):
        p.apply(make_context(), module)
    rng = np.random.default_rng(2)
    batch = {"x": rng.standard_normal((2, 4)).astype(np.float32),
             "labels": np.array([0, 2], np.int32)}
    result = assert_c_matches_interpreter(module, tmp_path / "project", batch)
    files = sorted(p.name for p in (tmp_path / "project").glob("params_*/*.npy"))
    assert len(files) == 10  # five parameters and their momentum
    assert "a.b.npy" in files and "a.b_momentum.npy" in files
    assert all(len(f) <= 100 for f in files)
    assert all(name in result.params for name in params_of(module))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=8, unique=True))
def test_c_names_are_identifiers_distinct_and_never_reserved(names):
    identifiers = unique_identifiers(names)
    assert len(set(identifiers)) == len(names)
    for i, (name, identifier) in enumerate(zip(names, identifiers)):
        assert IDENTIFIER.fullmatch(identifier) and not is_reserved(identifier)
        if c_identifier(name) not in identifiers[:i]:  # the first keeps its C name
            assert identifier == c_identifier(name)
    symbols = [param_symbol(n) for n in names]
    assert len(set(symbols)) == len(names)
    assert all(IDENTIFIER.fullmatch(s) for s in symbols if s)
    files = dump_file_names(names)
    assert len({f.lower() for f in files.values()}) == len(names)
    for file in files.values():
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.npy", file)
        assert len(file.encode()) <= 255


def test_c_identifier_examples():
    assert c_identifier("image") == "image"
    assert [c_identifier(n) for n in ("int", "main", "edge_fork", "NULL", "_X", "3d")] \
        == ["v_int", "v_main", "v_edge_fork", "v_NULL", "v__X", "v_3d"]
    assert unique_identifiers(["a.b", "a_b", "int", "v_int"]) == \
        ["a_b", "a_b_1", "v_int", "v_int_1"]


def test_parameter_named_like_the_training_step_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "m.mlir").write_text("""
    nn.param trainable @train_step : tensor<3x4xf32> = dense<0.5> : tensor<3x4xf32>
    func.func @forward(%x: tensor<2x4xf32>) -> tensor<2x3xf32> {
      %w = nn.load @train_step : tensor<3x4xf32>
      %y = nn.linear %x, %w : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
      func.return %y : tensor<2x3xf32>
    }
    """)
    code, _, err = cli([str(tmp_path / "m.mlir"), "--pipeline", "train-full"], capsys)
    assert code == 1
    assert "a parameter is named @train_step" in err and "Traceback" not in err
