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
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
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
}
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
    return Soc(
        name=data["name"],
        description=data["description"],
        cores=data["cores"],
        memory={level: memory[level] for level in LEVELS if level in memory},
    )
