// train-full: every trainable parameter trains; autodiff builds @train_step, then the
// clean-ups run. The optimizer's state is a parameter per trained parameter.
// RUN: edge-opt %examples/tiny_cnn.mlir --pipeline train-full --print-ir-after-all | filecheck %s --check-prefix=STAGES
// STAGES: IR after raise-layer-norm
// STAGES: IR after raise-attention
// STAGES: IR after autodiff
// STAGES: IR after canonicalize
// STAGES: IR after cse
// STAGES: IR after dce

// RUN: edge-opt %examples/tiny_cnn.mlir -p 'train-full{optimizer=adam}' | filecheck %s --check-prefix=ADAM
// ADAM:      nn.param trainable @conv1_weight : tensor<4x1x3x3xf32>
// ADAM-NEXT: nn.param @conv1_weight_exp_avg : tensor<4x1x3x3xf32> = dense<0.000000e+00> : tensor<4x1x3x3xf32> {train.state = "exp_avg", train.state_of = @conv1_weight}
// ADAM-NEXT: nn.param @conv1_weight_exp_avg_sq : tensor<4x1x3x3xf32> = dense<0.000000e+00> : tensor<4x1x3x3xf32> {train.state = "exp_avg_sq", train.state_of = @conv1_weight}
// The frozen running statistics of the batch norm get no state.
// ADAM:      nn.param @bn1_mean : tensor<4xf32>
// ADAM-NEXT: nn.param @bn1_var : tensor<4xf32>
// ADAM-LABEL: func.func @train_step(
// ADAM: train.adam
