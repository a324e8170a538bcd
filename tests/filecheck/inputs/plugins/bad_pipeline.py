"""A plugin pipeline naming a pass that does not exist."""


def register(plugin):
    plugin.add_pipeline("my-cleanup", "cse,no-such-pass", "cse and a typo")
