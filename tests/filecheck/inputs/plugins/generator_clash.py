"""A plugin op generator named like a built-in one."""

from xdsl.ir import Dialect


def register(plugin):
    plugin.add_dialect(Dialect("mine", []), generators={"relu": lambda b: None})
