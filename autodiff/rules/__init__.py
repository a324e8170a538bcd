"""Reverse-mode gradient rules, one per `nn` op, used by the `autodiff` pass.

A rule receives the op (in the function being differentiated), the gradient `dy` of its
result and which operands need a gradient, and emits the ops that compute those
gradients, returning one value (or None) per operand. Each rule reads only the forward
values its gradient needs: a relu's backward reads its output, a linear layer's weight
gradient reads its input only if the weight trains, a max-pool reads the index mask that
`train.max_pool2d_with_indices` produced instead of its input.

Rules build ops with the `nn`/`train` builders through `GradientBuilder.emit`, which
appends them to the backward pass in order.

A parameter updated only at some output channels (`edge_opt.ir.channels`) gets its
gradient for those alone: the linear and convolution rules gather `dy` to those channels
before the weight-gradient op, whose result then has the restricted shape.
"""

from edge_opt.autodiff.rules import (  # noqa: F401  (each module registers its rules)
    attention,
    elementwise,
    linalg,
    norms,
    pools,
    shapes,
)
from edge_opt.autodiff.rules.builder import RULES, GradientBuilder, Grads, rule

__all__ = ["RULES", "GradientBuilder", "Grads", "rule"]
