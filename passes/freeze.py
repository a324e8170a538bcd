"""`freeze`: chooses which parameters train, by name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.ir.options import EdgeOptPass
from edge_opt.ir.trainable import model_params, set_trainable


def _compile(pattern: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise PassFailedException(f"freeze: {option}='{pattern}' is not a regular expression: {e}") from None


@dataclass(frozen=True)
class FreezePass(EdgeOptPass):
    """Sets which parameters train, by name.

    - `trainable=REGEX`: exactly the parameters whose whole name matches train; the others
      are frozen.
    - `frozen=REGEX`: the parameters whose whole name matches are frozen (applied after
      `trainable`); the others keep their flag.

    A pattern that matches no parameter is an error (a typo would silently train
    nothing). Example: `freeze{trainable="classifier_.*"}`.
    """

    name = "freeze"

    trainable: str | None = None
    frozen: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        params = model_params(op)
        for option, pattern in (("trainable", self.trainable), ("frozen", self.frozen)):
            if pattern is None:
                continue
            regex = _compile(pattern, option)
            matched = [p for p in params if regex.fullmatch(p.sym_name.data)]
            if not matched:
                names = ", ".join(p.sym_name.data for p in params[:6])
                raise PassFailedException(
                    f"freeze: {option}='{pattern}' matches no parameter (the model has "
                    f"{len(params)}: {names}{', ...' if len(params) > 6 else ''})"
                )
            for p in params:
                if option == "trainable":
                    set_trainable(p, p in matched)
                elif p in matched:
                    set_trainable(p, False)
