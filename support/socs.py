"""SoCs as data: the memory levels and their capacities, the number of cores.

One TOML file per SoC in `backends/targets/` (`gap9`, `siracusa`, `host`); passes, reports
and the C backend read them through `get_soc(name)`. (The word *target* is xDSL's for an
output format, as in `-t c`; the chip a program is planned for is its *SoC*.)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from edge_opt.support.errors import UserError


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


def get_soc(name: str) -> Soc:
    path = _files().joinpath(f"{name}.toml")
    if not path.is_file():
        raise UserError(f"unknown SoC '{name}' (known: {', '.join(soc_names())})")
    data = tomllib.loads(path.read_text())
    return Soc(
        name=data["name"],
        description=data["description"],
        cores=int(data["cores"]),
        memory={level: int(size) for level, size in data["memory"].items()},
    )
