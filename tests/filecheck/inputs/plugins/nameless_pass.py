"""A plugin pass without a name."""

from dataclasses import dataclass

from xdsl.passes import ModulePass


@dataclass(frozen=True)
class Nameless(ModulePass):
    def apply(self, ctx, op):
        pass


def register(plugin):
    plugin.add_pass(Nameless)
