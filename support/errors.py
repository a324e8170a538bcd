"""The errors edge-opt reports to users.

`UserError` is everything the user can fix (bad file, bad input arrays, an unsupported
ONNX op, an impossible option); the driver prints its message and exits non-zero, never
a traceback. Invalid IR stays xDSL's `VerifyException`, a pass precondition xDSL's
`PassFailedException`; the driver formats those too.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, with a message that says what to do."""


class InputError(UserError):
    """Arrays given to a function do not match its signature."""


class ModelFileError(UserError):
    """A model file (.mlir, .npz, .onnx) is missing, unreadable or inconsistent."""


def read_user_file(path: Path, error: type[UserError] = UserError,
                   what: str = "file") -> str:
    """The UTF-8 text of a file the user named; a missing or unreadable one is `error`
    naming the path (`what` says what kind of file it should have been)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as e:
        it = "" if what == "file" else f" the {what}"
        raise error(f"{path}: cannot read{it} ({e})") from None
