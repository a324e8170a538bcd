// edge-opt fuzz: bad arguments are one clear line, before any work (more cases in
// tests/test_fuzz.py), and the summary of a campaign that passes.

// RUN: not edge-opt fuzz no-such-pass 2>&1 | filecheck %s --check-prefix=PASS
// PASS: edge-opt: error: bad pipeline 'no-such-pass': Unrecognized passes: ['no-such-pass'] (see --list-passes and --list-pipelines)

// RUN: not edge-opt fuzz cse --ops relu,frobnicate 2>&1 | filecheck %s --check-prefix=OPS
// OPS: edge-opt: error: --ops: unknown op 'frobnicate' (edge-opt fuzz --list-ops lists the ops; a plugin op needs its --load-plugin)

// --backend c: options that do not apply are one line each.
// RUN: not edge-opt fuzz cse --sanitize 2>&1 | filecheck %s --check-prefix=SANITIZE
// SANITIZE: edge-opt: error: --sanitize only takes effect with --backend c: add --backend c
// RUN: not edge-opt fuzz cse --steps 3 2>&1 | filecheck %s --check-prefix=STEPS
// STEPS: edge-opt: error: --steps only takes effect with --backend c: add --backend c
// RUN: not edge-opt fuzz --backend c infer --steps 0 2>&1 | filecheck %s --check-prefix=STEPS0
// STEPS0: edge-opt: error: --steps must be at least 1, got 0
// RUN: not edge-opt fuzz --backend c --train 2>&1 | filecheck %s --check-prefix=CTRAIN
// CTRAIN: edge-opt: error: --backend c checks the pipeline it is given: write the training pipeline as PIPELINE instead of --train (edge-opt fuzz --backend c 'train-full{loss=mse}')
// RUN: not edge-opt fuzz --backend c infer --replay %s 2>&1 | filecheck %s --check-prefix=CREPLAY
// CREPLAY: edge-opt: error: --backend c writes a reproducer directory; replay it with python -m edge_opt.testing.c_differential DIR
// RUN: not edge-opt fuzz --backend c --no-focus 2>&1 | filecheck %s --check-prefix=CFOCUS
// CFOCUS: edge-opt: error: --no-focus has no effect with --backend c (it has no probe)
// RUN: not edge-opt fuzz --backend c 'train-full{los=mse}' 2>&1 | filecheck %s --check-prefix=CPIPE
// CPIPE: edge-opt: error: bad pipeline 'train-full{los=mse}'

// --gradients and --trainable
// RUN: not edge-opt fuzz --gradients cse 2>&1 | filecheck %s --check-prefix=GRADS
// GRADS: edge-opt: error: --gradients: 'cse' builds no training step (it runs no autodiff); give a training pipeline, e.g. 'train-full{loss=mse}'
// RUN: not edge-opt fuzz --gradients --train 2>&1 | filecheck %s --check-prefix=GTRAIN
// GTRAIN: edge-opt: error: --gradients checks the training step of the pipeline it is given: drop --backend c, --train and --train-pipeline
// RUN: not edge-opt fuzz cse --train --trainable none 2>&1 | filecheck %s --check-prefix=TRAINABLE
// TRAINABLE: edge-opt: error: --trainable only takes effect on @forward: --train, --gradients and --backend c make every parameter trainable

// --batch
// RUN: not edge-opt fuzz cse --batch 2,x 2>&1 | filecheck %s --check-prefix=BATCH
// BATCH: edge-opt: error: --batch 2,x: give batch sizes as integers, e.g. --batch 2,4
// RUN: not edge-opt fuzz cse --batch 0 2>&1 | filecheck %s --check-prefix=BATCH0
// BATCH0: edge-opt: error: --batch 0: give at least one batch size, each at least 1
// RUN: not edge-opt fuzz cse --batch 2 --replay %s 2>&1 | filecheck %s --check-prefix=BREPLAY
// BREPLAY: edge-opt: error: --batch only takes effect on drawn models: drop it with --replay

// RUN: edge-opt fuzz cse --examples 5 --no-focus | filecheck %s --check-prefix=SUMMARY
// SUMMARY: edge-opt fuzz cse (@forward): 5 examples in {{[0-9.]+}} s ({{[0-9.]+}} examples/s), seed 0, 1 worker
// SUMMARY-NEXT: ops covered ({{[0-9]+}} kinds): {{.*}}
// SUMMARY-NOT: FAILED

func.func @forward(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  func.return %x : tensor<2x3xf32>
}
