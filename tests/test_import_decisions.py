"""What each ONNX initializer becomes at import (issue 10, items 5, 6, 7 and 11).

- Shared initializers: PyTorch's TorchScript exporter merges equal-valued tensors (zero
  biases, unit norm scales) and records it as `Identity(kept) -> merged name`. The
  default import unties them, and one SGD step then equals PyTorch's on the model
  (the oracle); `--keep-shared` keeps the file's sharing, and its update is the sum of
  the merged layers' gradients (PyTorch's, again). An initializer read directly by
  several layers stays shared with a warning; `--untie-shared` unties it.
- Constants that are not weights: what `torch.onnx.export(dynamo=True)` writes for a
  ViT-like block (observed with torch 2.13: the class token constant-folded and expanded
  to the batch, a one-element attention scale, transposed weights named `val_*`) is
  rebuilt here with `onnx.helper` (the dynamo exporter needs onnxscript, not a test
  dependency). The expanded token is a frozen parameter, the scale a constant, the
  weights and embeddings train; the summary says so; `--trainable` overrides.
- A graph input wins over an initializer of the same name (onnxruntime: the feed wins),
  unless the initializer is a layer's state (older exporters list weights as inputs).
- External data is read from the model's directory, whatever the current directory.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edge_opt.frontends.onnx import import_onnx, import_onnx_with_summary
from edge_opt.ir.context import make_context
from edge_opt.ir.model_io import load_model, read_npz
from edge_opt.ir.session import Session, get_function, input_names, params_of, run
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.support.errors import ModelFileError, UserError
from edge_opt.tools.driver import main

ort.set_default_logger_severity(3)

LR = 0.1


def make_model(nodes, inputs, outputs, initializers, graph_inputs=()):
    """A float model; `graph_inputs` names initializers that are listed as inputs too."""
    value_infos = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()
    ]
    value_infos += [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, initializers[n].shape)
        for n in graph_inputs
    ]
    graph = helper.make_graph(
        nodes,
        "test",
        value_infos,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers.items()],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    )


def ort_run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


def train(module, inputs: dict, labels: np.ndarray, lr: float = LR) -> dict:
    """The parameters after one `train-full` SGD step (cross-entropy, mean)."""
    module = module.clone()
    for p in expand(parse_pipeline(f"train-full{{lr={lr}}}")):
        p.apply(make_context(), module)
    session = Session(module)
    session.run("train_step", {**inputs, "labels": labels})
    return {k: np.array(v) for k, v in session.params.items()}


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------
# 5. Initializers the exporter merged
# --------------------------------------------------------------------------------------


class MergingNet(torch.nn.Module):
    """Zero conv biases and a fresh LayerNorm: equal-valued tensors the TorchScript
    exporter merges in eval mode."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 4, 3)
        self.c2 = torch.nn.Conv2d(4, 4, 3)
        self.ln = torch.nn.LayerNorm(4)
        self.fc = torch.nn.Linear(4, 3)
        torch.nn.init.zeros_(self.c1.bias)
        torch.nn.init.zeros_(self.c2.bias)

    def forward(self, x):
        y = self.c2(torch.relu(self.c1(x))).mean((2, 3))
        return self.fc(self.ln(y))


@pytest.fixture(scope="module")
def merging_net(tmp_path_factory):
    torch.manual_seed(0)
    net = MergingNet().eval()
    x = torch.randn(3, 3, 8, 8)
    labels = torch.tensor([0, 2, 1])
    path = tmp_path_factory.mktemp("merging") / "net.onnx"
    torch.onnx.export(
        net, (x,), str(path), dynamo=False, input_names=["x"], output_names=["logits"]
    )
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), labels).backward()
    grads = {n: p.grad.numpy().copy() for n, p in net.named_parameters()}
    before = {n: p.detach().numpy().copy() for n, p in net.named_parameters()}
    return path, x.numpy(), labels.numpy().astype(np.int32), before, grads


def test_exporter_merges_are_untied_and_train_as_in_pytorch(merging_net):
    path, x, labels, before, grads = merging_net
    graph = onnx.load(path).graph
    merged = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    assert {"c2.bias", "ln.bias"} <= set(merged)  # what the test is about
    module, summary = import_onnx_with_summary(path)
    assert not summary.warnings
    assert sorted(c for copies in summary.untied.values() for c in copies) == sorted(merged)
    after = train(module, {"x": x}, labels)
    assert set(summary.symbols) == set(before)
    for name, value in before.items():
        expected = value - LR * grads[name]
        np.testing.assert_allclose(
            after[summary.symbols[name]], expected, rtol=1e-4, atol=1e-6, err_msg=name
        )


def test_keep_shared_trains_the_sum_of_the_merged_gradients(merging_net):
    path, x, labels, before, grads = merging_net
    graph = onnx.load(path).graph
    merged = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    module, summary = import_onnx_with_summary(path, untie="none")
    assert not summary.untied
    after = train(module, {"x": x}, labels)
    for kept in set(merged.values()):
        group = [kept, *(m for m, k in merged.items() if k == kept)]
        expected = before[kept] - LR * sum(grads[n] for n in group)
        np.testing.assert_allclose(
            after[summary.symbols[kept]], expected, rtol=1e-4, atol=1e-6, err_msg=kept
        )
        assert not np.allclose(expected, before[kept] - LR * grads[kept], atol=1e-6)
    # Shared by several layers, kept: a warning names it.
    assert any(re.search(r"'c1\.bias' is shared by 3 layers", w) for w in summary.warnings)


def _directly_shared() -> onnx.ModelProto:
    """One bias read by two Gemms (as an onnx optimizer leaves merged initializers)."""
    rng = np.random.default_rng(1)
    initializers = {
        "w1": rng.standard_normal((4, 4)).astype(np.float32),
        "w2": rng.standard_normal((3, 4)).astype(np.float32),
        "b": np.zeros(4, np.float32),
        "b2": np.zeros(3, np.float32),
    }
    initializers["b2"] = initializers["b"][:3].copy()
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w1", "b"], ["h2"], transB=1, name="fc2"),
        helper.make_node("Gemm", ["h2", "w2", "b2"], ["y"], transB=1, name="head"),
    ]
    return make_model(nodes, {"x": (2, 4)}, ["y"], initializers)


def test_import_warns_about_shared_parameters_and_unties_on_request(tmp_path, capsys):
    model = _directly_shared()
    path = tmp_path / "shared.onnx"
    onnx.save(model, path)
    feeds = {"x": np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)}
    (reference,) = ort_run(model, feeds)

    code, out, err = cli(["import", str(path), "-o", str(tmp_path / "tied.mlir")], capsys)
    assert code == 0
    assert "edge-opt: warning: parameter 'b' is shared by 2 layers (Gemm 'fc1', Gemm " \
        "'fc2')" in err and "--untie-shared" in err
    assert "edge-opt: warning: parameter 'w1' is shared by 2 layers" in err
    tied = load_model(tmp_path / "tied.mlir")
    assert sorted(params_of(tied)) == ["b", "b2", "w1", "w2"]

    code, out, err = cli(
        ["import", str(path), "-o", str(tmp_path / "untied.mlir"), "--untie-shared"],
        capsys,
    )
    assert code == 0 and "warning" not in err
    assert "b -> b_1" in out and "w1 -> w1_1" in out
    untied = load_model(tmp_path / "untied.mlir")
    assert sorted(params_of(untied)) == ["b", "b2", "b_1", "w1", "w1_1", "w2"]
    for module in (tied, untied):
        (ours,) = run(module, "forward", feeds)
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    # Untied, each layer trains on its own gradient: the two copies move apart.
    labels = np.array([0, 2], np.int32)
    after = train(untied, feeds, labels)
    assert not np.allclose(after["b"], after["b_1"])


def test_keep_shared_and_untie_shared_exclude_each_other(tmp_path, capsys):
    path = tmp_path / "shared.onnx"
    onnx.save(_directly_shared(), path)
    with pytest.raises(SystemExit):
        main(["import", str(path), "--untie-shared", "--keep-shared"])
    assert "not allowed with argument" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# 6. Constants that are not weights
# --------------------------------------------------------------------------------------


def _dynamo_style(batch: int) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A ViT-like block as the dynamo exporter writes it (see the module docstring)."""
    rng = np.random.default_rng(3)
    dim = 8
    initializers = {
        "expand": np.broadcast_to(rng.standard_normal((1, 1, dim)), (batch, 1, dim))
        .astype(np.float32).copy(),
        "pos": rng.standard_normal((1, 5, dim)).astype(np.float32),
        "val_12": rng.standard_normal((dim, dim)).astype(np.float32),
        "qkv.bias": rng.standard_normal(dim).astype(np.float32),
        "val_34": np.array([0.35], np.float32),
        "val_40": rng.standard_normal((dim, 1)).astype(np.float32),
        "pool.bias": np.array([0.1], np.float32),
        "head.weight": rng.standard_normal((3, 5)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Concat", ["expand", "x"], ["cat"], axis=1),
        helper.make_node("Add", ["cat", "pos"], ["add"]),
        helper.make_node("MatMul", ["add", "val_12"], ["mm"]),
        helper.make_node("Add", ["mm", "qkv.bias"], ["linear"]),
        helper.make_node("Mul", ["linear", "val_34"], ["scaled"], name="node_mul"),
        helper.make_node("MatMul", ["scaled", "val_40"], ["pool"]),
        helper.make_node("Add", ["pool", "pool.bias"], ["pooled"]),  # Linear(dim, 1)
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "head.weight"], ["logits"], transB=1),
    ]
    model = make_model(nodes, {"x": (batch, 4, dim)}, ["logits"], initializers)
    feeds = {"x": rng.standard_normal((batch, 4, dim)).astype(np.float32)}
    return model, feeds


def test_constants_of_the_graph_do_not_train():
    model, feeds = _dynamo_style(batch=2)
    module, summary = import_onnx_with_summary(model)
    kinds = {d.name: d.kind for d in summary.decisions}
    assert kinds == {
        "expand": "frozen",  # the class token, already expanded to the batch
        "pos": "trainable",
        "val_12": "trainable",
        "qkv.bias": "trainable",
        "val_34": "constant",  # the attention scale
        "val_40": "trainable",
        "pool.bias": "trainable",  # one element, but a layer's bias
        "head.weight": "trainable",
    }
    params = params_of(module)
    assert not params["expand"].is_trainable and "val_34" not in params
    (ours,) = run(module, "forward", feeds)
    (reference,) = ort_run(model, feeds)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    after = train(module, feeds, np.array([0, 2], np.int32))
    np.testing.assert_array_equal(after["expand"], numpy_helper.to_array(
        next(t for t in model.graph.initializer if t.name == "expand")))
    assert not np.allclose(after["pos"], params_of(module)["pos"].value.get_values()[0])


def test_with_batch_one_the_expanded_token_is_the_parameter():
    model, _ = _dynamo_style(batch=1)
    _, summary = import_onnx_with_summary(model)
    assert {d.name: d.kind for d in summary.decisions}["expand"] == "trainable"


def test_trainable_overrides_the_rule():
    model, feeds = _dynamo_style(batch=2)
    module, summary = import_onnx_with_summary(model, trainable="expand|val_34")
    params = params_of(module)
    assert params["expand"].is_trainable and params["val_34"].is_trainable
    (ours,) = run(module, "forward", feeds)
    (reference,) = ort_run(model, feeds)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="matches no initializer"):
        import_onnx(model, trainable="exapnd")
    with pytest.raises(UserError, match="not a regular expression"):
        import_onnx(model, trainable="(")


def test_import_summary_lists_the_decisions(tmp_path, capsys):
    model, _ = _dynamo_style(batch=2)
    path = tmp_path / "vit.onnx"
    onnx.save(model, path)
    code, out, err = cli(["import", str(path), "-o", str(tmp_path / "vit.mlir")], capsys)
    assert code == 0 and err == ""
    assert "initializers: 6 trainable parameter(s), 1 frozen parameter(s), 1 constant(s)" in out
    assert re.search(r"frozen +expand float32\[2x1x8\]: its first dimension is the batch "
                     r"size 2", out)
    assert re.search(r"constant +val_34 float32\[1\]: one element, input 1 of Mul "
                     r"'node_mul'", out)
    assert "pos" not in out  # trainable: listed with -v only
    code, out, _ = cli(["import", str(path), "-o", str(tmp_path / "v.mlir"), "-v",
                        "--trainable", "val_34"], capsys)
    assert code == 0
    assert re.search(r"trainable +pos float32\[1x5x8\]: input 1 of Add", out)
    assert re.search(r"trainable +val_34 float32\[1\]: --trainable matches it", out)
    assert params_of(load_model(tmp_path / "v.mlir"))["val_34"].is_trainable
    code, _, err = cli(["import", str(path), "--trainable", "nothing"], capsys)
    assert code == 1 and "--trainable 'nothing' matches no initializer" in err


# --------------------------------------------------------------------------------------
# 7. A graph input and an initializer of the same name
# --------------------------------------------------------------------------------------


def test_graph_input_wins_over_an_initializer_of_its_name(tmp_path, capsys):
    rng = np.random.default_rng(4)
    initializers = {
        "x": np.zeros((2, 4), np.float32),  # a default value for the input
        "w": rng.standard_normal((3, 4)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    model = make_model(nodes, {"x": (2, 4)}, ["y"], initializers)
    feeds = {"x": rng.standard_normal((2, 4)).astype(np.float32)}
    (reference,) = ort_run(model, feeds)  # onnxruntime uses the feed
    assert np.any(reference)

    module, summary = import_onnx_with_summary(model)
    assert input_names(get_function(module, "forward")) == ["x"]
    assert list(params_of(module)) == ["w"]
    assert {d.name: d.kind for d in summary.decisions}["x"] == "input"
    (ours,) = run(module, "forward", feeds)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)

    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "in.npz", **feeds)
    code, out, _ = cli(["import", str(path), "-o", str(tmp_path / "m.mlir")], capsys)
    assert code == 0 and re.search(r"input +x float32\[2x4\]: a graph input has the same "
                                   r"name: the input wins", out)
    code, out, _ = cli(["run", str(tmp_path / "m.mlir"), "--input",
                        str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz")], capsys)
    assert code == 0
    np.testing.assert_allclose(read_npz(tmp_path / "out.npz")["y"], reference, rtol=1e-5)


def test_weights_listed_as_inputs_stay_parameters():
    rng = np.random.default_rng(5)
    initializers = {
        "w": rng.standard_normal((3, 4)).astype(np.float32),
        "b": rng.standard_normal(3).astype(np.float32),
    }
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
    model = make_model(nodes, {"x": (2, 4)}, ["y"], initializers, graph_inputs=["w", "b"])
    module = import_onnx(model)
    assert input_names(get_function(module, "forward")) == ["x"]
    assert all(p.is_trainable for p in params_of(module).values())
    assert sorted(params_of(module)) == ["b", "w"]


# --------------------------------------------------------------------------------------
# 11. External data
# --------------------------------------------------------------------------------------


def test_external_data_is_read_beside_the_model(tmp_path, capsys, monkeypatch):
    model = _directly_shared()
    feeds = {"x": np.random.default_rng(6).standard_normal((2, 4)).astype(np.float32)}
    (reference,) = ort_run(model, feeds)
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(model, folder / "model.onnx", save_as_external_data=True,
              all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # A file of the same name in the current directory must not be read.
    (elsewhere / "weights.bin").write_bytes(bytes(range(256)) * 4)
    monkeypatch.chdir(elsewhere)
    for argv in (
        [str(folder / "model.onnx"), "-o", "optimized.mlir"],
        ["import", str(folder / "model.onnx"), "-o", "imported.mlir"],
        ["../model/model.onnx", "-p", "cse", "-o", "relative.mlir"],
    ):
        code, _, err = cli(argv, capsys)
        assert code == 0, err
        (ours,) = run(load_model(elsewhere / argv[argv.index("-o") + 1]), "forward", feeds)
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_external_data_without_a_directory_is_a_clean_error(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(_directly_shared(), folder / "model.onnx", save_as_external_data=True,
              location="weights.bin", size_threshold=0)
    data = (folder / "model.onnx").read_bytes()
    with pytest.raises(ModelFileError, match="has its data in an external file"):
        import_onnx(data)
    module = import_onnx(data, base_dir=folder)
    assert sorted(params_of(module)) == ["b", "b2", "w1", "w2"]
    (folder / "weights.bin").unlink()
    with pytest.raises(ModelFileError, match="model.onnx: not a readable ONNX model"):
        import_onnx(folder / "model.onnx")
    with pytest.raises(ModelFileError, match="cannot read the external data"):
        import_onnx(data, base_dir=folder)
