"""A plugin whose register raises (line 6)."""


def register(plugin):
    options = {}
    plugin.add_pass(options["pass"])
