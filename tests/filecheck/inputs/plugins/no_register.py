"""A plugin without a register function."""

PASSES = []
