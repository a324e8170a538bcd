"""End-to-end time of `edge-opt import` + `edge-opt run` on CCT2 (0.28 M parameters).

    python bench/import_run.py [--repeat 3] [--model DIR]

Runs the two commands as a user would (fresh processes, so Python start-up and imports
count), repeats them and prints the best and median wall time of each and of the sum, plus
exact counts (ops in the imported module, parameter values, bytes of .mlir and .npz).
Acceptance target (issue 2): import + run under 5 s on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "deeploy" / "CCT_Train_CCT2_FT2"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    edge_opt = shutil.which("edge-opt", path=str(Path(sys.executable).parent))
    if edge_opt is None:
        sys.exit("edge-opt is not installed in this environment")
    onnx = args.model / "network_infer.onnx"
    if not onnx.exists():
        onnx = args.model / "network.onnx"
    inputs = args.model / "inputs.npz"

    with tempfile.TemporaryDirectory() as tmp:
        mlir = Path(tmp) / "model.mlir"
        imports, runs = [], []
        for _ in range(args.repeat):
            imports.append(timed([edge_opt, "import", str(onnx), "-o", str(mlir)]))
            runs.append(timed([edge_opt, "run", str(mlir), "--input", str(inputs)]))
        text = mlir.read_text()
        ops = sum(1 for line in text.splitlines() if " = nn." in line or "nn.param" in line)
        npz_bytes = mlir.with_suffix(".npz").stat().st_size
        totals = [a + b for a, b in zip(imports, runs)]

    print(f"model: {onnx.relative_to(onnx.parents[1])}")
    print(f"module: {ops} nn ops (incl. params), {len(text):,} B .mlir, {npz_bytes:,} B .npz")
    for name, values in (("import", imports), ("run", runs), ("import+run", totals)):
        print(
            f"{name:>11}: best {min(values):.2f} s  median {statistics.median(values):.2f} s"
            f"  (n={len(values)})"
        )
    print(f"target: import+run < 5 s -> {'OK' if min(totals) < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
