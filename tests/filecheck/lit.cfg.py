"""lit configuration: MLIR-style tests that pin the IR edge-opt prints.

Run with `lit tests/filecheck` (pytest runs it too, in tests/test_lit.py). `edge-opt` and
`filecheck` must be on PATH (both are installed by `pip install -e '.[test]'`).
"""

import os
import sys

import lit.formats

config.name = "edge-opt"
config.test_format = lit.formats.ShTest()
config.suffixes = [".mlir"]
config.excludes = ["lit.cfg.py", "inputs"]
config.test_source_root = os.path.dirname(__file__)
config.environment["PATH"] = os.environ["PATH"]
config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%inputs", os.path.join(config.test_source_root, "inputs")))
config.substitutions.append(
    ("%examples", os.path.join(config.test_source_root, "..", "..", "examples"))
)
for var in ("HOME", "PYTHONPATH", "VIRTUAL_ENV", "EDGE_OPT_SHARED_MODELS"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
