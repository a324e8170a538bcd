"""A plugin pass named like a built-in one."""

from dataclasses import dataclass

from xdsl.passes import ModulePass


@dataclass(frozen=True)
class MyCse(ModulePass):
    name = "cse"

    def apply(self, ctx, op):
        pass


def register(plugin):
    plugin.add_pass(MyCse)
