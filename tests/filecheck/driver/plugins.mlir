// Plugins: a pass loaded with --load-plugin runs like a built-in one, before or after
// the other arguments; a plugin that cannot load is one clear line naming the file
// (and the line, when it is in the plugin's code) and the name at fault. More cases
// are in tests/test_plugins.py (in-process: each RUN line here pays the start-up).

// RUN: edge-opt %s --load-plugin %S/../../plugins/buggy_passes.py -p swap-sub-operands | filecheck %s --check-prefix=SWAP
// SWAP: %0 = nn.sub %y, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>

// RUN: not edge-opt %s --load-plugin %inputs/plugins/does_not_exist.py -p cse 2>&1 | filecheck %s --check-prefix=MISSING
// MISSING: edge-opt: error: plugin {{.*}}does_not_exist.py: no such file
// MISSING-NOT: Traceback

// RUN: not edge-opt %s --load-plugin %inputs/plugins/import_error.py -p cse 2>&1 | filecheck %s --check-prefix=IMPORT
// IMPORT: edge-opt: error: plugin {{.*}}import_error.py:4: cannot import: NameError: name 'undefined_name' is not defined
// IMPORT-NOT: Traceback

// RUN: not edge-opt %s --load-plugin %inputs/plugins/no_register.py -p cse 2>&1 | filecheck %s --check-prefix=NOREGISTER
// NOREGISTER: edge-opt: error: plugin {{.*}}no_register.py: defines no register(plugin) function (see docs/plugins-and-fuzzing.md)

// RUN: not edge-opt %s --load-plugin %inputs/plugins/builtin_clash.py -p cse 2>&1 | filecheck %s --check-prefix=BUILTIN
// BUILTIN: edge-opt: error: plugin {{.*}}builtin_clash.py: pass 'cse' clashes with a built-in pass or pipeline of the same name (rename it)

// RUN: not edge-opt %s --load-plugin %S/../../plugins/buggy_passes.py --load-plugin %inputs/plugins/plugin_clash.py -p cse 2>&1 | filecheck %s --check-prefix=CLASH
// CLASH: edge-opt: error: plugin {{.*}}plugin_clash.py: pass 'fuse-linear-bias' is already registered by plugin {{.*}}buggy_passes.py

// RUN: not edge-opt %s --load-plugin %inputs/plugins/not_a_pass.py -p cse 2>&1 | filecheck %s --check-prefix=NOTPASS
// NOTPASS: edge-opt: error: plugin {{.*}}not_a_pass.py: add_pass(my_pass): not a ModulePass subclass

// RUN: not edge-opt %s --load-plugin %inputs/plugins/nameless_pass.py -p cse 2>&1 | filecheck %s --check-prefix=NAMELESS
// NAMELESS: edge-opt: error: plugin {{.*}}nameless_pass.py: pass class Nameless has no name (set the class attribute name = "my-pass")

func.func @forward(%x: tensor<2x3xf32>, %y: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = nn.sub %x, %y : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %0 : tensor<2x3xf32>
}
