"""SoC files: the built-in ones, a user's own (`--soc FILE.toml`), and clear errors that
name the key of a malformed file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from edge_opt.support.errors import UserError
from edge_opt.support.socs import get_soc, soc_names
from edge_opt.tools.driver import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "tiny_cnn.mlir")

GOOD = 'name = "board"\ndescription = "a board"\ncores = 4\n[memory]\nL1 = 64000\nL2 = 1000000\n'
DMA = ("[dma]\nsetup_cycles = 30\nl2_to_l1_bytes_per_cycle = 8.0\nl1_to_l2_bytes_per_cycle = 8\n"
       "l3_to_l2_bytes_per_cycle = 1.0\nl2_to_l3_bytes_per_cycle = 1.0\n")
COMPUTE = ("[compute]\nflops_per_cycle_per_core = 0.5\ntile_overhead_cycles = 200\n"
           "inner_overhead = 4\n")
TILED = GOOD + DMA + COMPUTE


@pytest.mark.parametrize("name", soc_names())
def test_built_in_socs_are_their_files(name: str):
    data = tomllib.loads((ROOT / "backends" / "targets" / f"{name}.toml").read_text())
    soc = get_soc(name)
    assert (soc.name, soc.cores, soc.memory) == (data["name"], data["cores"], data["memory"])
    assert soc.dma == data.get("dma", {}) and soc.compute == data.get("compute", {})
    assert soc.tiled == ("dma" in data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("cores = 4", "cores = 0"), "'cores' must be a positive integer, not 0"),
        (GOOD.replace("cores = 4", 'cores = "8"'), "'cores' must be a positive integer"),
        (GOOD.replace("cores = 4\n", ""), "missing key 'cores'"),
        ("clock = 3\n" + GOOD, "unknown key 'clock'"),
        (GOOD.replace("L1 = 64000", "L4 = 64000"), "unknown memory level 'memory.L4'"),
        (GOOD.replace("L1 = 64000", "L1 = -1"), "'memory.L1' must be a positive number"),
        (GOOD.replace("L2 = 1000000\n", ""), "missing key 'memory.L2'"),
        (GOOD.replace("[memory]", "memory = 3\n[other]"), "unknown key 'other'"),
        ("name = \n", "not valid TOML"),
        (GOOD + DMA, "missing key 'compute' (a SoC with a [dma] table needs [compute] too"),
        (GOOD + COMPUTE, "missing key 'dma' (a SoC with a [compute] table needs [dma] too"),
        (TILED.replace("setup_cycles = 30", 'setup_cycles = "fast"'),
         "'dma.setup_cycles' must be a number >= 0, not 'fast'"),
        (TILED.replace("l2_to_l1_bytes_per_cycle = 8.0", "l2_to_l1_bytes_per_cycle = 0"),
         "'dma.l2_to_l1_bytes_per_cycle' must be a positive number, not 0"),
        (TILED.replace("inner_overhead = 4\n", ""), "missing key 'compute.inner_overhead'"),
        (TILED.replace("setup_cycles", "latency"), "unknown key 'dma.latency'"),
        (TILED.replace("L1 = 64000\n", ""), "missing key 'memory.L1' (a SoC with a [dma] "
         "table computes on L1)"),
    ],
)
def test_a_malformed_soc_file_names_its_key(tmp_path: Path, text: str, message: str, capsys):
    path = tmp_path / "board.toml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        get_soc(str(path))
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    # The same through the command line: one line, exit 1, nothing written.
    out = tmp_path / "project"
    assert main([EXAMPLE, "--pipeline", "train-full", "--emit", "c", "-o", str(out),
                 "--soc", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edge-opt: error:") and message in err and not out.exists()


def test_unknown_soc_lists_the_known_ones(capsys):
    assert main(["report", EXAMPLE, "--pipeline", "train-full", "--soc", "gap8"]) == 1
    assert "unknown SoC 'gap8' (known: gap9, host, siracusa" in capsys.readouterr().err


def test_a_user_soc_file_end_to_end(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("board.toml").write_text(GOOD)
    assert main([EXAMPLE, "--pipeline", "train-full", "--emit", "c", "-o", "p",
                 "--soc", "board.toml"]) == 0
    macros = dict(re.findall(r"#define (EDGE_SOC\w*) (\S+)", Path("p/network.h").read_text()))
    assert macros == {"EDGE_SOC": '"board"', "EDGE_SOC_CORES": "4",
                      "EDGE_SOC_L1_BYTES": "64000", "EDGE_SOC_L2_BYTES": "1000000",
                      "EDGE_SOC_L3_BYTES": "0"}
    capsys.readouterr()
    assert main(["report", EXAMPLE, "--pipeline", "train-full", "--soc", "board.toml"]) == 0
    assert re.search(r"^L2 .* 1,000,000 +yes$", capsys.readouterr().out, re.M)
    # Too small a board: the capacity error names it.
    Path("tiny.toml").write_text(GOOD.replace("L2 = 1000000", "L2 = 1000"))
    assert main([EXAMPLE, "-p", "train-full,lower-to-buffers{soc=\"tiny.toml\"}"]) == 1
    assert "L2 needs" in capsys.readouterr().err


def test_a_user_soc_file_with_dma_tables_tiles(tmp_path: Path, capsys):
    """A user's SoC with [dma] and [compute] runs kernels on its L1 (64,000 B here):
    the report shows an L1 arena within it and the DMA of a training step."""
    path = tmp_path / "board.toml"
    path.write_text(TILED)
    assert main(["report", EXAMPLE, "--pipeline", "train-full", "--soc", str(path)]) == 0
    out = capsys.readouterr().out
    l1 = re.search(r"^L1\s+([\d,]+)", out, re.M)
    assert l1 and 0 < int(l1.group(1).replace(",", "")) <= 64000, out
    assert re.search(r"@train_step\s+L2->L1\s+[\d,]+\s+[\d,]+", out), out
