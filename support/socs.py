"""SoCs as data: the memory levels and their capacities, the number of cores.

One TOML file per SoC in `backends/targets/` (`gap9`, `siracusa`, `host`); `get_soc`
takes one of those names or the path of a user's own file (`--soc my_board.toml`).
Passes, reports and the C backend read SoCs only through `get_soc`, which checks the
file against `SCHEMA` and names the offending key of a malformed one. (The word *target*
is xDSL's for an output format, as in `-t c`; the chip a program is planned for is its
*SoC*.)

A SoC file:

    name = "gap9"                      # required, the name reports print
    description = "..."                # required
    cores = 8                          # required, compute cores of the cluster (>= 1)
    [memory]                           # required: usable bytes per level, L2 at least
    L1 = 120000
    L2 = 1572864
    L3 = 8388608                       # a level absent here does not exist on the SoC
    [dma]                              # optional: the cores compute on L1, fed by DMA
    setup_cycles = 30                  # per transfer (programming the engine)
    l2_to_l1_bytes_per_cycle = 8.0     # bandwidth per direction
    l1_to_l2_bytes_per_cycle = 8.0
    l3_to_l2_bytes_per_cycle = 1.0
    l2_to_l3_bytes_per_cycle = 1.0
    [compute]                          # required with [dma]: the tiling cost model
    flops_per_cycle_per_core = 0.5     # sustained by the float kernels
    tile_overhead_cycles = 200         # per tile: kernel call, fork, barriers
    inner_overhead = 4                 # a row of n elements costs as n + 4

A SoC with a `[dma]` table has an L1 and is compiled tiled by default (`tile-l1`,
`insert-dma`): its numbers drive the schedule search (`edge_opt.support.schedule_search`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edge_opt.support.errors import UserError, read_user_file

LEVELS = ("L1", "L2", "L3")


@dataclass(frozen=True)
class Soc:
    name: str
    description: str
    cores: int
    memory: dict[str, int]
    """Usable bytes per memory level (`L1`, `L2`, `L3`); a level absent here does not
    exist on the SoC."""
    dma: dict[str, float] = field(default_factory=dict)
    """The `[dma]` table; empty for a SoC whose cores compute on L2 (no tiling)."""
    compute: dict[str, float] = field(default_factory=dict)

    @property
    def tiled(self) -> bool:
        """Whether kernels run on L1 tiles fed by DMA."""
        return bool(self.dma)


def _files():
    return resources.files("edge_opt.backends").joinpath("targets")


def soc_names() -> list[str]:
    return sorted(f.name.removesuffix(".toml") for f in _files().iterdir()
                  if f.name.endswith(".toml"))


def is_soc_file(name: str) -> bool:
    """Whether `name` names a user's file rather than a built-in SoC."""
    return name.endswith(".toml") or "/" in name or "\\" in name


def get_soc(name: str) -> Soc:
    """The built-in SoC `name`, or the SoC described by the TOML file at path `name`."""
    if is_soc_file(name):
        return parse_soc(read_user_file(Path(name), what="SoC file"), name)
    path = _files().joinpath(f"{name}.toml")
    if not path.is_file():
        raise UserError(
            f"unknown SoC '{name}' (known: {', '.join(soc_names())}, or the path of a "
            ".toml file)"
        )
    return parse_soc(path.read_text(), f"{name}.toml")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


SCHEMA: dict[str, tuple[type, str]] = {
    "name": (str, "a string"),
    "description": (str, "a string"),
    "cores": (int, "a positive integer"),
    "memory": (dict, "a table of usable bytes per level (L1, L2, L3)"),
    "dma": (dict, "a table of DMA costs (see DMA_KEYS)"),
    "compute": (dict, "a table of compute costs (see COMPUTE_KEYS)"),
}
OPTIONAL = ("dma", "compute")

DMA_KEYS = ("setup_cycles", "l2_to_l1_bytes_per_cycle", "l1_to_l2_bytes_per_cycle",
            "l3_to_l2_bytes_per_cycle", "l2_to_l3_bytes_per_cycle")
COMPUTE_KEYS = ("flops_per_cycle_per_core", "tile_overhead_cycles", "inner_overhead")
"""The keys of a SoC file, with what each must be."""


def parse_soc(text: str, where: str) -> Soc:
    """A SoC from the text of its file; `where` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where}: not valid TOML: {e}") from None
    for key in data:
        if key not in SCHEMA:
            raise UserError(f"{where}: unknown key '{key}' (known: {', '.join(SCHEMA)})")
    for key, (kind, what) in SCHEMA.items():
        if key not in data:
            if key in OPTIONAL:
                continue
            raise UserError(f"{where}: missing key '{key}' ({what})")
        value = data[key]
        if not isinstance(value, kind) or (kind is int and not _positive_int(value)):
            raise UserError(f"{where}: '{key}' must be {what}, not {value!r}")
    memory = data["memory"]
    for level, size in memory.items():
        if level not in LEVELS:
            raise UserError(f"{where}: unknown memory level 'memory.{level}' (known: "
                            f"{', '.join(LEVELS)})")
        if not _positive_int(size):
            raise UserError(f"{where}: 'memory.{level}' must be a positive number of "
                            f"bytes, not {size!r}")
    if "L2" not in memory:
        raise UserError(f"{where}: missing key 'memory.L2' (every SoC has an L2: the "
                        "default level of activations and parameters)")
    dma = _cost_table(data, "dma", DMA_KEYS, where)
    compute = _cost_table(data, "compute", COMPUTE_KEYS, where)
    if bool(dma) != bool(compute):
        present, absent = ("dma", "compute") if dma else ("compute", "dma")
        raise UserError(f"{where}: missing key '{absent}' (a SoC with a [{present}] "
                        f"table needs [{absent}] too: the tiling cost model reads both)")
    if dma and "L1" not in memory:
        raise UserError(f"{where}: missing key 'memory.L1' (a SoC with a [dma] table "
                        "computes on L1)")
    return Soc(
        name=data["name"],
        description=data["description"],
        cores=data["cores"],
        memory={level: memory[level] for level in LEVELS if level in memory},
        dma=dma,
        compute=compute,
    )


def _cost_table(data: dict[str, Any], table: str, keys: Sequence[str],
                where: str) -> dict[str, float]:
    values = data.get(table)
    if values is None:
        return {}
    for key in values:
        if key not in keys:
            raise UserError(f"{where}: unknown key '{table}.{key}' (known: "
                            f"{', '.join(keys)})")
    result = {}
    for key in keys:
        if key not in values:
            raise UserError(f"{where}: missing key '{table}.{key}'")
        value = values[key]
        may_be_zero = key.endswith(("overhead", "cycles"))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            value > 0 or (may_be_zero and value == 0)
        ):
            what = "a number >= 0" if may_be_zero else "a positive number"
            raise UserError(f"{where}: '{table}.{key}' must be {what}, not {value!r}")
        result[key] = float(value)
    return result
