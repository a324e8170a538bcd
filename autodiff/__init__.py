"""Reverse-mode differentiation at the graph level, shared by the passes that build or
cost a training step (`autodiff`, `sparse-update`, `select-last-layers`):

- `rules`: the gradient rule of every differentiable `nn` op (`RULES`), by op family;
- `train_step`: `TrainStepBuilder`, which builds `@train_step` from `@forward`;
- `optimizers`: `OptimizerEmitter`, each parameter's SGD or Adam update.
"""
