"""Plugins (`edge_opt.tools.plugins`): loading from files and entry points, what a
plugin registers being visible only while its registry is active, and the loader's
errors (the most common ones are lit tests in tests/filecheck/driver/plugins.mlir)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Block, Region

from edge_opt.dialects import nn
from edge_opt.ir.context import make_context
from edge_opt.ir.model_io import parse_module
from edge_opt.ir.session import run
from edge_opt.passes.registry import available_passes, named_pipelines
from edge_opt.testing import random_models
from edge_opt.tools.driver import main
from edge_opt.tools.plugins import ENTRY_POINT_GROUP, load_plugins

ROOT = Path(__file__).parent
BUGGY = str(ROOT / "plugins" / "buggy_passes.py")
SWISH = str(ROOT / "plugins" / "swish_dialect.py")
INPUTS = ROOT / "filecheck" / "inputs" / "plugins"


def error_of(argv: list[str], capsys) -> str:
    assert main(argv) == 1
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("syntax_error.py", "syntax_error.py:4: cannot import: SyntaxError: expected ':'"),
        ("register_error.py", "register_error.py:6: register failed: KeyError: 'pass'"),
        ("bad_pipeline.py", ("bad_pipeline.py: pipeline 'my-cleanup': bad pipeline "
         "'cse,no-such-pass': Unrecognized passes: ['no-such-pass'] (see --list-passes "
         "and --list-pipelines)")),
        ("dialect_clash.py", ("dialect_clash.py: dialect 'nn' clashes with a built-in "
         "dialect of the same name (rename it)")),
        ("generator_clash.py", ("generator_clash.py: op generator 'relu' clashes with a "
         "built-in op generator of the same name (rename it)")),
    ],
)
def test_loader_errors_name_the_file_line_and_name(file: str, message: str, capsys):
    path = str(INPUTS / file)
    assert error_of(["--load-plugin", path, "--list-passes"], capsys) == (
        f"edge-opt: error: plugin {path.removesuffix(file)}{message}"
    )


def test_two_plugins_with_one_op_name_clash(capsys):
    assert error_of(["--load-plugin", SWISH, "--load-plugin", SWISH, "--list-passes"],
                    capsys) == (
        f"edge-opt: error: plugin {SWISH}: dialect 'demo' is already registered by "
        f"plugin {SWISH}"
    )


def test_load_plugin_without_a_file_and_before_a_subcommand(capsys):
    assert error_of(["fuzz", "cse", "--load-plugin"], capsys) == (
        "edge-opt: error: --load-plugin needs a plugin file (a .py file)"
    )
    assert main(["--load-plugin", SWISH, "fuzz", "cse", "--list-ops"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "demo.swish"


def test_registrations_are_visible_only_while_active():
    registry = load_plugins([BUGGY, SWISH])
    assert "swap-sub-operands" not in available_passes()
    with registry.activated():
        assert {"swap-sub-operands", "fuse-linear-bias", "expand-swish"} <= set(
            available_passes())
        assert "fuse-and-clean" in named_pipelines()
        assert "demo" in make_context().registered_dialect_names
        random_models(ops=["demo.swish"])  # accepted
    assert "swap-sub-operands" not in available_passes()
    assert "fuse-and-clean" not in named_pipelines()
    assert "demo" not in make_context().registered_dialect_names
    with pytest.raises(ValueError, match="unknown op names"):
        random_models(ops=["demo.swish"])


def test_plugin_op_is_parsed_and_interpreted():
    x = np.array([[-2.0, 0.0, 3.0]], dtype=np.float32)
    text = """
    func.func @forward(%x: tensor<1x3xf32>) -> tensor<1x3xf32> {
      %0 = demo.swish %x : tensor<1x3xf32> -> tensor<1x3xf32>
      func.return %0 : tensor<1x3xf32>
    }"""
    with load_plugins([SWISH]).activated():
        (y,) = run(parse_module(text), "forward", {"x": x})
    np.testing.assert_allclose(y, x * (1 / (1 + np.exp(-x))), rtol=1e-6)


def _linear_plus_bias(path: Path) -> None:
    x = TensorType(f32, (2, 3))
    block = Block(arg_types=[x])
    w = nn.LoadOp("w", TensorType(f32, (4, 3)))
    b = nn.LoadOp("b", TensorType(f32, (4,)))
    linear = nn.LinearOp(block.args[0], w)
    add = nn.AddOp(linear, b)
    block.add_ops([w, b, linear, add, func.ReturnOp(add)])
    params = [
        nn.ParamOp("w", TensorType(f32, (4, 3)), True),
        nn.ParamOp("b", TensorType(f32, (4,)), True),
    ]
    forward = func.FuncOp("forward", ([x], [add.result.type]), Region(block))
    path.write_text(str(ModuleOp([*params, forward])))


def test_plugin_pipeline_runs_in_the_driver(tmp_path: Path, capsys):
    model = tmp_path / "model.mlir"
    _linear_plus_bias(model)
    assert main([str(model), "--load-plugin", BUGGY, "-p", "fuse-and-clean"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"nn\.linear %\w+, %\w+, %\w+ :", printed), printed
    assert "nn.add" not in printed


def _fake_distribution(root: Path, module: str, source: str, value: str) -> None:
    """A distribution installed in `root` (a sys.path entry) with one entry point in
    the group `edge_opt.plugins`."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ndemo = {value}\n")


ENTRY_POINT_PLUGIN = """
    from dataclasses import dataclass

    from xdsl.passes import ModulePass


    @dataclass(frozen=True)
    class NothingPass(ModulePass):
        name = "entry-point-nothing"

        def apply(self, ctx, op):
            pass


    def register(plugin):
        plugin.add_pass(NothingPass)
"""


@pytest.mark.parametrize("value", ["fake_plugin_module:register", "fake_plugin_module"])
def test_entry_point_plugins_load_at_start(value: str, tmp_path: Path, monkeypatch,
                                           capsys):
    module = f"fake_plugin_{'fn' if ':' in value else 'mod'}"
    _fake_distribution(tmp_path, module, ENTRY_POINT_PLUGIN,
                       value.replace("fake_plugin_module", module))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["--list-passes"]) == 0
    assert "entry-point-nothing" in capsys.readouterr().out.split()


def test_entry_point_that_fails_to_load(tmp_path: Path, monkeypatch, capsys):
    _fake_distribution(tmp_path, "fake_broken_plugin", "VALUE = 1 / 0\n",
                       "fake_broken_plugin:register")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert error_of(["--list-passes"], capsys) == (
        "edge-opt: error: plugin entry point 'demo' (fake_broken_plugin:register): "
        "cannot load: ZeroDivisionError: division by zero (at "
        f"{tmp_path / 'fake_broken_plugin.py'}:1)"
    )
