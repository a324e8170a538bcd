"""A plugin whose import fails (line 4)."""

VALUE = 1
BROKEN = undefined_name + VALUE  # noqa: F821


def register(plugin):
    pass
