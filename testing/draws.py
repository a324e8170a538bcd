"""Random models that depend on the seed alone.

Hypothesis (since 6.131) replaces a few of the values it draws (one in twenty) by
constants collected from the source of the *local* modules loaded at that moment:
those outside site-packages and outside test folders. The same seed then draws other
models once another module has been imported (a test that ran earlier, a plugin), and
an editable install of edge-opt (whose modules are local) draws other models than a
wheel (whose modules are not). That made derandomized CI runs depend on test order
and would make `edge-opt fuzz --seed S` draw differently on another machine.

`seed_only_draws()` is a context in which Hypothesis sees no local constants (its
fixed built-in constants stay). `run_campaign` and the focus probe run in it, and the
test suite runs in it from start to end (`tests/conftest.py`). On a Hypothesis
without this mechanism it does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis.internal.conjecture import providers

_COLLECT = getattr(providers, "_get_local_constants", None)
_CONSTANTS = getattr(providers, "Constants", None)


def _no_local_constants() -> object:
    assert _CONSTANTS is not None
    return _CONSTANTS()


def _clear_cache() -> None:
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if cache is not None:
        cache.cache.clear()


@contextmanager
def seed_only_draws() -> Iterator[None]:
    """Within the block, Hypothesis draws no constants of local modules (see the
    module docstring)."""
    if _COLLECT is None or _CONSTANTS is None:
        yield
        return
    saved = providers._get_local_constants
    providers._get_local_constants = _no_local_constants
    _clear_cache()  # it may hold local constants drawn before
    try:
        yield
    finally:
        providers._get_local_constants = saved
        _clear_cache()
