"""A plugin registering a function as a pass."""


def my_pass(module):
    pass


def register(plugin):
    plugin.add_pass(my_pass)
