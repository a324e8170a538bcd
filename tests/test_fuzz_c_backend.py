"""`edge-opt fuzz --backend c`: the C checker of `edge_opt.testing.c_differential` as
the property of a campaign (issue 14, part 4). A clean short campaign passes; a bug
planted in one C kernel is caught, shrunk, and its reproducer directory replays.

Budget: each example builds and runs a C project; the runtime's objects are compiled
once (the module's `cache` fixture).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import reject
from xdsl.dialects import func

from edge_opt.backends.c import host
from edge_opt.dialects import nn
from edge_opt.ir.model_io import load_model
from edge_opt.ir.session import get_function
from edge_opt.testing import Campaign, RandomModel, c_differential, run_campaign
from edge_opt.testing.c_differential import RuntimeMutation
from edge_opt.tools.driver import main
from edge_opt.tools.fuzz import fuzz_command

RELU_IS_IDENTITY = RuntimeMutation(
    "edge_kernels_elementwise.c",
    "const uint32_t negative = bits - 0x80000001u <= 0x7F7FFFFFu;",
    "const uint32_t negative = 0;",
)
"""A planted bug: the forward relu kernel passes negative numbers through."""


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """The runtime object cache of this module's checks and replays, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield host.default_cache()


def forward_ops(path: Path) -> list[str]:
    body = get_function(load_model(path), "forward").body.block
    return [op.name for op in body.ops if not isinstance(op, func.ReturnOp)]


def test_a_clean_campaign_passes(capsys):
    status = main(["fuzz", "--backend", "c", "--examples", "4", "--max-ops", "3"])
    output = capsys.readouterr().out
    assert status == 0, output
    assert output.startswith(
        "edge-opt fuzz --backend c train-full{loss=mse lr=0.05} (C vs interpreter, "
        "@train_step, 1 step): 4 examples in ")
    assert "FAILED" not in output and "ops covered" in output


def test_sanitize_and_steps_reach_the_check(monkeypatch, capsys):
    """The options of the command are those of each check (the sanitizer build itself
    is tested in test_c_differential.py: it compiles the runtime again, ~25 s)."""
    calls = []

    def record(module, inputs, **options):
        calls.append(options)

    monkeypatch.setattr(c_differential, "check_c_backend", record)
    status = main(["fuzz", "--backend", "c", "infer", "--sanitize", "--steps", "2",
                   "--examples", "3"])
    output = capsys.readouterr().out
    assert status == 0, output
    assert "(C vs interpreter, @forward, 2 steps, sanitized): 3 examples in" in output
    assert len(calls) == 3
    assert all(c["pipeline"] == "infer" and c["sanitize"] and c["steps"] == 2
               for c in calls)


def test_a_planted_kernel_bug_is_caught_and_its_reproducer_replays(tmp_path, capsys):
    out = tmp_path / "repro"
    status = fuzz_command(["--backend", "c", "infer", "--ops", "relu,linear",
                           "--examples", "20", "--out", str(out)],
                          runtime_patch=RELU_IS_IDENTITY)
    output = capsys.readouterr().out
    assert status == 1, output
    assert "FAILED after" in output
    assert "the C backend disagrees with the interpreter (infer" in output
    assert "workdir" not in output  # the reproducer keeps the project
    ops = forward_ops(out / "repro.mlir")
    assert "nn.relu" in ops and len(ops) <= 5, ops
    assert json.loads((out / "case.json").read_text())["runtime_mutation"] == {
        "file": RELU_IS_IDENTITY.file, "find": RELU_IS_IDENTITY.find,
        "replace": RELU_IS_IDENTITY.replace}
    (line,) = [x for x in output.splitlines() if x.startswith("replay: ")]
    words = shlex.split(line.removeprefix("replay: "))
    assert words[:3] == ["python", "-m", "edge_opt.testing.c_differential"]
    replayed = subprocess.run([sys.executable, *words[1:]], check=False,
                              capture_output=True, text=True)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "FAILED: the C backend disagrees" in replayed.stderr


def test_a_runtime_patch_needs_the_c_backend():
    with pytest.raises(ValueError, match="give --backend c"):
        fuzz_command(["cse"], runtime_patch=RELU_IS_IDENTITY)


def test_rejected_models_are_not_examples():
    """A property that rejects (as the C check does for a model the backend refuses)
    gets other models: the budget counts only the models it checked."""
    checked = []

    def no_exp(model: RandomModel) -> None:
        if any(isinstance(op, nn.ExpOp) for op in model.module.walk()):
            reject()
        checked.append(model)

    result = run_campaign(Campaign(examples=15, ops=("exp", "relu")), no_exp)
    assert result.failure is None and result.rejected > 0
    assert result.examples == len(checked) == 15
    assert "nn.exp" not in result.op_counts
