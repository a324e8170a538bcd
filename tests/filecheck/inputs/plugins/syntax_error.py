"""A plugin with a syntax error on line 4."""


def register(plugin)
    pass
