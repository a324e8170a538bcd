"""Targets as data: the memory levels and their capacities, the number of cores.

One TOML file per target in `backends/targets/` (`gap9`, `siracusa`, `host`); passes and
reports read them through `get_target(name)`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from edge_opt.support.errors import UserError


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    cores: int
    memory: dict[str, int]
    """Usable bytes per memory level (`L1`, `L2`, `L3`); a level absent here does not
    exist on the target."""


def _files():
    return resources.files("edge_opt.backends").joinpath("targets")


def target_names() -> list[str]:
    return sorted(f.name.removesuffix(".toml") for f in _files().iterdir()
                  if f.name.endswith(".toml"))


def get_target(name: str) -> Target:
    path = _files().joinpath(f"{name}.toml")
    if not path.is_file():
        raise UserError(
            f"unknown target '{name}' (known: {', '.join(target_names())})"
        )
    data = tomllib.loads(path.read_text())
    return Target(
        name=data["name"],
        description=data["description"],
        cores=int(data["cores"]),
        memory={level: int(size) for level, size in data["memory"].items()},
    )
