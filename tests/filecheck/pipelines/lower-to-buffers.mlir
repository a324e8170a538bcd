// The lowering stage is a named pipeline: its steps and the SoC it records.
// RUN: edge-opt %examples/tiny_cnn.mlir -p 'train-full,lower-to-buffers{soc=gap9 weights=L3}' --print-ir-after-all | filecheck %s
// CHECK: IR after autodiff
// CHECK: IR after lower-attention
// CHECK: IR after bufferize{weights="L3"}
// CHECK: IR after plan-memory{soc="gap9"}
// CHECK: builtin.module attributes {{.*}}kernel.soc = "gap9"
// CHECK: nn.param trainable @conv1_weight : tensor<4x1x3x3xf32> {kernel.level = "L3"

// --emit c runs the same stage inside the pass pipeline: the IR the C comes from.
// RUN: rm -rf %t && edge-opt %examples/tiny_cnn.mlir --pipeline train-full --emit c -o %t --soc gap9 --print-ir-after-all | filecheck %s --check-prefix=EMIT
// EMIT: IR after dce
// EMIT: IR after lower-attention
// EMIT: IR after bufferize
// EMIT: IR after plan-memory{soc="gap9"}
// EMIT: kernel.soc = "gap9"
// EMIT: wrote {{.*}} (test of @train_step, 3 step(s)

// A --soc that the pipeline's plan contradicts cannot take effect: an error, nothing written.
// RUN: rm -rf %t2 && not edge-opt %examples/tiny_cnn.mlir -p 'train-full,bufferize{weights=L3},plan-memory{soc=host}' --emit c --soc siracusa -o %t2 2>&1 | filecheck %s --check-prefix=SOC
// RUN: not test -e %t2
// SOC: edge-opt: error: the module is already planned for SoC host (plan-memory{soc=host}); --soc siracusa cannot take effect
