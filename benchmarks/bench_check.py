"""Benchmark: what `python -m bptt check` costs, as ratios to baselines measured in the same run.

Run: python benchmarks/bench_check.py [--repeats N]

For each shape's correct file in tests/unit/check_files (the LSTM's and the GRU's in gated/) it prints the median
time of check_file at the cell's default configs (target: at most 5 s on a loaded 2-core machine), and that as a ratio
to
  - spawn: starting a Python that imports NumPy (the least a separate process for the student's code can cost);
  - reference: the project's own reference numbers for the same configs and cell (both autograd references, the
    engine and its replay), computed in-process.
Rounds are interleaved (medians reported), so that load from other processes slows all alike. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
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
SHAPES = {"rnn (a) step": "torch_step.py", "rnn (b) sequence": "torch_sequence.py", "rnn (c) CS231n": "cs231n.py",
          "rnn (d) class": "worked_exercise.py", "rnn (d) class, (B, H)": "exercise_class_batch_bias.py",
          "rnn (e) Coursera": "coursera_rnn.py",
          "lstm (a) step": "gated/lstm_torch_step.py", "lstm (b) sequence": "gated/lstm_torch_sequence.py",
          "lstm (c) CS231n": "gated/lstm_cs231n.py", "lstm (e) Coursera": "gated/lstm_coursera.py",
          "gru (a) step": "gated/gru_torch_step.py", "gru (b) sequence": "gated/gru_torch_sequence.py"}
CELLS = ("rnn", "lstm", "gru")


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (medians are reported)")
    ap.add_argument("--threads", action="store_true", help="keep torch's default thread count (the CLI uses one)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be an integer >= 1")
    if not args.threads:
        import torch
        torch.set_num_threads(1)     # as `python -m bptt check` does
    spawn = lambda: subprocess.run([sys.executable, "-c", "import numpy"], check=True)  # noqa: E731
    refs = {c: (lambda c=c: [reference(draw_problem(cfg)) for cfg in default_configs(c)]) for c in CELLS}
    times: dict[str, list[float]] = {"spawn": [], **{f"reference {c}": [] for c in CELLS}, **{k: [] for k in SHAPES}}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        times["spawn"].append(timed(spawn))
        for c in CELLS:
            times[f"reference {c}"].append(timed(refs[c]))
        for name, f in SHAPES.items():
            configs = default_configs(name.split()[0])
            times[name].append(timed(lambda f=f, configs=configs: check_file(FILES / f, configs)))
    load.append(os.getloadavg()[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"load average {load[0]:.1f} at the start, {load[1]:.1f} at the end; medians of {args.repeats}")
    print(f"baselines: spawn (python -c 'import numpy') {med['spawn'] * 1e3:.0f} ms, reference of the 2 default "
          f"configs: " + ", ".join(f"{c} {med[f'reference {c}'] * 1e3:.0f} ms" for c in CELLS))
    print(f"{'shape':<24}{'check_file':>12}{'/ spawn':>10}{'/ reference':>13}  (target: at most 5 s)")
    for name in SHAPES:
        ref = med[f"reference {name.split()[0]}"]
        print(f"{name:<24}{med[name] * 1e3:>10.0f}ms{med[name] / med['spawn']:>10.1f}{med[name] / ref:>13.1f}"
              f"  {'ok' if med[name] <= 5.0 else 'OVER'}")


if __name__ == "__main__":
    main()
