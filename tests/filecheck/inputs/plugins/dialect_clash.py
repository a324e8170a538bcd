"""A plugin dialect named like a built-in one."""

from xdsl.ir import Dialect


def register(plugin):
    plugin.add_dialect(Dialect("nn", []))
