"""`edge-opt profile`: the generated step on emulated RV32 cores (`edge_opt.backends.c.
profile`, `edge_opt.backends.rv32.team`). The team runs like a cluster (a core sees
what the others wrote before a barrier), a phase lasts as long as its slowest core,
the step's results equal the interpreter's (else the profile is refused), and the
counts are reproducible and consistent between 1 and 8 cores.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_opt.backends.c.profile import profile_step
from edge_opt.backends.c.project import runtime_files
from edge_opt.backends.rv32.emulator import Program, build_elf
from edge_opt.backends.rv32.team import Team
from edge_opt.ir import model_io
from edge_opt.testing import apply_passes

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_cnn.mlir"
EXAMPLE_INPUT = ROOT / "examples" / "tiny_cnn_input.npz"

TEAM_PROGRAM = r"""
#include "edge_platform.h"
__attribute__((noinline)) void mark(void) { __asm__ volatile(""); }
volatile int32_t slots[8];
int32_t total, seen_cores;
__attribute__((noinline)) static void deep(int k) {  /* core k: 256 k bytes of stack */
  volatile uint8_t frame[2048];
  for (int i = 0; i < 256 * k; i++) frame[sizeof frame - 1 - i] = 1;
}
static void body(void *arg) {
  (void)arg;
  int k = edge_core_id();
  deep(k);
  for (volatile int i = 0; i < 10 * k; i++) {}   /* core k works longer */
  slots[k] = k + 1;
  edge_barrier();
  if (k == 0) {                                  /* sees every core's write */
    for (int i = 0; i < edge_num_cores(); i++) total += slots[i];
    seen_cores = edge_num_cores();
  }
  edge_barrier();
}
__attribute__((section(".text.entry"))) void entry(void) {
  edge_set_num_cores(8);
  mark();
  edge_fork(body, 0);
  mark();
  for (;;) {}
}
"""


@pytest.fixture(scope="module")
def team_elf(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("team")
    for name, content in runtime_files().items():
        (directory / name).write_bytes(content)
    (directory / "team.c").write_text(TEAM_PROGRAM)
    return build_elf([directory / "team.c", directory / "edge_platform.c"],
                     directory / "team.elf", include=[directory],
                     defines=["EDGE_EMULATED"])


def test_a_team_runs_like_a_cluster(team_elf: Path):
    program = Program(team_elf)
    counts = Team(program, 8).run()
    assert int.from_bytes(program.read("total", 4), "little") == sum(range(1, 9))
    assert int.from_bytes(program.read("seen_cores", 4), "little") == 8
    assert counts.phases == 3  # two barriers: before, between, after
    work = [sum(table.values()) for table in counts.instructions]
    # core k spins 10 k times; core 0 also sums
    assert work[1:] == sorted(work[1:]) and work[7] > work[1]
    waits = [sum(table.values()) for table in counts.waits]
    # phase 1: core 7 is the slowest; phase 2: core 0 (the sum) is
    assert waits[7] > 0 and waits[0] > 0
    assert counts.step_instructions == counts.serial + max(
        w + x for w, x in zip(work, waits, strict=True))


def test_the_stack_a_core_uses_is_measured(team_elf: Path):
    """Core k writes the top 256 k bytes of a local array of `deep`: its high-water
    mark is that plus the frames above the array (a few words, the same on every
    core; core 0 reaches only the saved registers of `deep`, just above the array)."""
    stacks = Team(Program(team_elf), 8).run().stack_bytes
    assert 0 < stacks[0] < 128
    assert 256 <= stacks[1] - stacks[0] < 256 + 16
    assert [b - a for a, b in itertools.pairwise(stacks[1:])] == [256] * 6


def test_the_same_program_counts_the_same(team_elf: Path):
    first, second = Team(Program(team_elf), 8).run(), Team(Program(team_elf), 8).run()
    assert first.instructions == second.instructions
    assert first.step_instructions == second.step_instructions


@pytest.fixture(scope="module")
def tiny_cnn():
    tensor = apply_passes("train-full{lr=0.05}", model_io.load_model(EXAMPLE))
    data = np.load(EXAMPLE_INPUT)
    return tensor, {"image": data["image"], "labels": data["labels"]}


def test_the_profiled_training_step_equals_the_interpreter(tiny_cnn):
    tensor, batch = tiny_cnn
    one, eight = profile_step(tensor, None, 1, batch), profile_step(tensor, None, 8, batch)
    for profile in (one, eight):
        assert "10 parameter(s)" in profile.checked  # every parameter compared
        assert [c.op for c in profile.calls][:2] == ["nn.conv2d", "nn.batch_norm"]
    assert one.step_instructions == one.serial_instructions + one.unmarked_instructions[
        0] + sum(c.instructions[0] for c in one.calls)  # one core never waits
    assert eight.step_instructions < one.step_instructions / 4
    for call in eight.calls:
        assert call.slowest == max(i + w for i, w in zip(call.instructions, call.waits,
                                                         strict=True))
    assert one.flops == eight.flops > 0


STACK_BUDGET = 2048
"""Bytes of stack a core may use for the generated step: the kernels' frames and the
tile level's boxes of one loop nest at a time (the DMA descriptors are static)."""


def test_the_tiled_step_fits_a_small_stack(tiny_cnn, tmp_path: Path):
    """Cut into many loop nests by a small L1, the step still needs the stack of one
    nest: each nest's locals live in a block of their own and the descriptors in a
    static pool (before, every nest's boxes and descriptors added up in one frame:
    33,876 B per core for this step; now 1,652 B)."""
    tensor, batch = tiny_cnn
    target = (ROOT / "backends" / "targets" / "gap9.toml").read_text()
    soc = tmp_path / "small_l1.toml"
    soc.write_text(target.replace("L1 = 120000", "L1 = 2560"))
    profile = profile_step(tensor, str(soc), 2, batch)
    assert sum(c.tiles for c in profile.calls) > 2 * len(profile.calls)
    assert 0 < profile.stack_bytes <= STACK_BUDGET


def test_a_wrong_result_refuses_the_profile(tiny_cnn, monkeypatch):
    """The emulated step is compared with the interpreter's: a kernel of the runtime
    that computes something else (conv2d's output scaled) is caught."""
    from edge_opt.backends.c import project
    from edge_opt.backends.c.emitter import EmitError

    tensor, batch = tiny_cnn
    monkeypatch.setattr(project, "runtime_files", _scaled_conv(project.runtime_files))
    with pytest.raises(EmitError, match="differs from the interpreter's"):
        profile_step(tensor, None, 2, batch)


def _scaled_conv(original):
    """runtime_files with edge_conv2d_f32's first output off by one (a planted bug)."""
    def files():
        result = dict(original())
        source = result["edge_kernels_conv_pool.c"].decode()
        result["edge_kernels_conv_pool.c"] = source.replace(
            "void edge_conv2d_f32(", "void edge_conv2d_f32_ok(", 1).encode() + b"""
void edge_conv2d_f32(const edge_conv2d_t *p, const float *x, const float *w,
                     const float *b, float *y) {
  edge_conv2d_f32_ok(p, x, w, b, y);
  edge_barrier();
  if (edge_core_id() == 0) y[0] += 1.0f;
  edge_barrier();
}
"""
        return result
    return files


def test_profile_command_prints_json(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "edge_opt.tools.driver", "profile", str(EXAMPLE),
         "--cores", "2", "--json"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["function"] == "forward" and data["cores"] == 2
    assert data["step_instructions"] > 0 and data["flop_per_instruction"] > 0
    assert {"op", "instructions", "waits", "flops"} <= set(data["calls"][0])
    assert data["estimated_cycles"] >= data["step_instructions"]


def test_profile_command_refuses_bad_cores():
    result = subprocess.run(
        [sys.executable, "-m", "edge_opt.tools.driver", "profile", str(EXAMPLE),
         "--cores", "0"], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "edge-opt: error: --cores must be 1 to 8, got 0"
