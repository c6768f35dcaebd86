"""Benchmark: what `python -m bptt check` costs, as ratios to baselines measured in the same run.

Run: python benchmarks/bench_check.py [--repeats N]

For each shape's correct file in tests/unit/check_files it prints the median time of check_file at the default
configs, and that as a ratio to
  - spawn: starting a Python that imports NumPy (the least a separate process for the student's code can cost);
  - reference: the project's own reference numbers for the same configs (both autograd references, the engine and
    its replay), computed in-process.
Rounds are interleaved (medians reported), so that load from other processes slows all alike. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bptt.check.checker import check_file, default_configs, reference  # noqa: I001
from bptt.problem import draw_problem

FILES = ROOT / "tests" / "unit" / "check_files"
SHAPES = {"(a) step": "torch_step.py", "(b) sequence": "torch_sequence.py", "(c) CS231n": "cs231n.py",
          "(d) class": "worked_exercise.py", "(d) class, (B, H)": "exercise_class_batch_bias.py",
          "(e) Coursera": "coursera_rnn.py"}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (medians are reported)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be an integer >= 1")
    configs = default_configs()
    spawn = lambda: subprocess.run([sys.executable, "-c", "import numpy"], check=True)  # noqa: E731
    refs = lambda: [reference(draw_problem(c)) for c in configs]  # noqa: E731
    times: dict[str, list[float]] = {"spawn": [], "reference": [], **{k: [] for k in SHAPES}}
    for _ in range(args.repeats):
        times["spawn"].append(timed(spawn))
        times["reference"].append(timed(refs))
        for name, f in SHAPES.items():
            times[name].append(timed(lambda f=f: check_file(FILES / f, configs)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"baselines: spawn (python -c 'import numpy') {med['spawn'] * 1e3:.0f} ms, "
          f"reference of {len(configs)} configs {med['reference'] * 1e3:.0f} ms  (medians of {args.repeats})")
    print(f"{'shape':<20}{'check_file':>12}{'/ spawn':>10}{'/ reference':>13}")
    for name in SHAPES:
        print(f"{name:<20}{med[name] * 1e3:>10.0f}ms{med[name] / med['spawn']:>10.1f}"
              f"{med[name] / med['reference']:>13.1f}")


if __name__ == "__main__":
    main()
