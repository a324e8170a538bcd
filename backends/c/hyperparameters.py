"""The optimizer's scalars as runtime state of the generated C.

The learning rate, momentum and weight decay of the pipeline are the initial values of
one `edge_hyperparameters_t` in `network.c`; every optimizer update reads them at each
step, so a learning-rate schedule (or a fine-tuning recipe) changes them between steps
with `edge_set_lr` / `edge_set_hyperparameters`, without recompiling. The setters check
the same rules as the pipeline options (`edge_opt.ir.options`): lr > 0, momentum in
[0, 1), weight decay >= 0, all finite; a value that cannot take effect (momentum for an
optimizer without a momentum buffer) is refused too. Adam's betas and epsilon stay
compile-time constants (its bias corrections are precomputed in double).
"""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from edge_opt.backends.c.emitter import EmitError, c_literal
from edge_opt.dialects import kernel

FIELDS = ("lr", "momentum", "weight_decay")
GLOBAL = "edge_hyperparameters"
"""The C variable every optimizer update reads."""

_OPTIMIZERS = (kernel.SgdKernelOp, kernel.SgdMomentumKernelOp, kernel.AdamKernelOp,
               kernel.LinearGradWeightSgdKernelOp, kernel.Conv2dGradWeightSgdKernelOp)


def hyperparameters(module: ModuleOp) -> dict[str, float] | None:
    """The optimizer scalars shared by every update of `module`; None without updates."""
    found: dict[tuple[float, ...], str] = {}
    for op in module.walk():
        if isinstance(op, _OPTIMIZERS):
            values = tuple(
                float(op.properties[f].value.data) if f in op.properties else 0.0  # type: ignore[attr-defined]
                for f in FIELDS
            )
            found.setdefault(values, op.name)
    if not found:
        return None
    if len(found) > 1:
        listed = "; ".join(f"{name}: {dict(zip(FIELDS, v))}" for v, name in found.items())
        raise EmitError(
            f"the optimizer updates use different hyperparameters ({listed}); the C "
            "runtime holds one set: train with one optimizer configuration"
        )
    return dict(zip(FIELDS, next(iter(found))))


def has_momentum(module: ModuleOp) -> bool:
    return any(isinstance(op, kernel.SgdMomentumKernelOp) for op in module.walk())


def declarations(values: dict[str, float] | None) -> list[str]:
    """The `network.h` part: the struct and its setters (training modules only)."""
    if values is None:
        return []
    initial = ", ".join(f"{k}={v:g}" for k, v in values.items())
    return [
        "/* The optimizer's scalars, read by every step: a schedule changes them between",
        f" * steps without recompiling. Initially the pipeline's ({initial}). */",
        "typedef struct {",
        *(f"  float {name};" for name in FIELDS),
        "} edge_hyperparameters_t;",
        "",
        "/* Sets them for the following steps: 0 on success; -1, changing nothing, if a",
        " * value breaks its rule (lr > 0, 0 <= momentum < 1, weight_decay >= 0, finite) or",
        " * cannot take effect (a momentum for an optimizer without a momentum buffer). */",
        "int edge_set_hyperparameters(const edge_hyperparameters_t *values);",
        "edge_hyperparameters_t edge_get_hyperparameters(void);",
        "/* edge_set_hyperparameters with only the learning rate changed. */",
        "int edge_set_lr(float lr);",
        "",
    ]


def definitions(values: dict[str, float] | None, momentum: bool) -> list[str]:
    """The `network.c` part: the variable and the setters."""
    if values is None:
        return []
    body = ", ".join(f".{k} = {c_literal(v, 'float')}" for k, v in values.items())
    no_momentum = "" if momentum else " || v->momentum != 0.0f"
    return [
        f"static edge_hyperparameters_t {GLOBAL} = {{{body}}};",
        "",
        "static int edge_finite(float x) { return x - x == 0.0f; }",
        "",
        "int edge_set_hyperparameters(const edge_hyperparameters_t *v) {",
        "  if (!edge_finite(v->lr) || !edge_finite(v->momentum) ||",
        "      !edge_finite(v->weight_decay) || !(v->lr > 0.0f) || v->momentum < 0.0f ||",
        f"      v->momentum >= 1.0f || v->weight_decay < 0.0f{no_momentum})",
        "    return -1;",
        f"  {GLOBAL} = *v;",
        "  return 0;",
        "}",
        "",
        f"edge_hyperparameters_t edge_get_hyperparameters(void) {{ return {GLOBAL}; }}",
        "",
        "int edge_set_lr(float lr) {",
        f"  edge_hyperparameters_t v = {GLOBAL};",
        "  v.lr = lr;",
        "  return edge_set_hyperparameters(&v);",
        "}",
        "",
    ]


def runtime_fields(*names: str) -> dict[str, str]:
    """Kernel-parameter fields read from the runtime struct (for `FunctionContext.params`)."""
    return {name: f"{GLOBAL}.{name}" for name in names}
