"""The errors edge-opt reports to users.

`UserError` is everything the user can fix (bad file, bad input arrays, an unsupported
ONNX op, an impossible option); the driver prints its message and exits non-zero, never
a traceback. Invalid IR stays xDSL's `VerifyException`, a pass precondition xDSL's
`PassFailedException`; the driver formats those too.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, with a message that says what to do."""


class InputError(UserError):
    """Arrays given to a function do not match its signature."""


class ModelFileError(UserError):
    """A model file (.mlir, .npz, .onnx) is missing, unreadable or inconsistent."""
