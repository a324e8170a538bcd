"""A plugin pass named like one of tests/plugins/buggy_passes.py."""

from dataclasses import dataclass

from xdsl.passes import ModulePass


@dataclass(frozen=True)
class OtherFusion(ModulePass):
    name = "fuse-linear-bias"

    def apply(self, ctx, op):
        pass


def register(plugin):
    plugin.add_pass(OtherFusion)
