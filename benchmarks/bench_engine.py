"""Benchmark: the NumPy engine's forward+backward against torch.nn.RNN / LSTM / GRU (float64, CPU), in one run.

Run: python benchmarks/bench_engine.py [--cell rnn|lstm|gru] [--repeats N] [--threads N]

For each config it prints
  - ratio: engine time (run_engine on a pre-drawn Problem: the Trace every per-step quantity is read from, and the
    full weight gradients; the weight-shaped per-step quantities the Trace derives on demand are not built) / the
    cell's torch module forward+backward time on the same data and the same loss L = sum(dh_out * h); target
    <= TARGET (0.5) at the large config (issue 14);
  - plain: the same ratio for run_plain, the engine's plain form (the derivation line by line), for comparison;
  - GFLOP/s: 6*T*B*H*(H+I) flops / engine time, and that as a fraction of this machine's float64 matmul rate
    (a square numpy matmul, measured in the same run).
Engine, torch and matmul are timed in interleaved rounds (medians reported), so that load from other processes
slows all three alike. Nothing is asserted: these are ratios, not verdicts.

--threads N pins NumPy's BLAS and torch to N threads (both default to one per core). On a machine shared with
other jobs, --threads 1 gives the steadiest numbers: multi-threaded BLAS on small matrices spin-waits for cores
that other processes hold, which can slow either side by 10x or more.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9, help="interleaved rounds per config (medians are reported)")
    ap.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="rnn", help="the cell (default rnn)")
    ap.add_argument("--threads", type=int, default=0, help="BLAS and torch threads (0: the libraries' default)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be an integer >= 1")
    if args.threads < 0:
        ap.error("--threads must be an integer >= 0 (0: the libraries' default)")
    return args


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
if ARGS.threads:  # must be set before numpy and torch load their thread pools
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from bptt.config import RNNConfig  # noqa: E402
from bptt.engine import run_engine, run_plain  # noqa: E402
from bptt.problem import Problem, draw_problem, make_torch_rnn  # noqa: E402

if ARGS.threads:
    torch.set_num_threads(ARGS.threads)

LARGE = "large (I=64, H=128, T=100, B=32)"
CONFIGS = {
    "default (I=4, H=5, T=3, B=3)": RNNConfig(cell=ARGS.cell),
    LARGE: RNNConfig(cell=ARGS.cell, input_size=64, hidden_size=128, seq_len=100, batch_size=32),
}
MATMUL_N = 512   # the square float64 matmul that stands for this machine's BLAS rate
TARGET = 0.5     # engine / torch.nn.RNN at the large config (issue 9)


# ----------------------------------------------------------------------------------------------------------------------
# timing

def per_call(fn: Callable[[], object], min_time: float = 0.02) -> Callable[[], float]:
    """A sampler: each call times enough back-to-back calls of fn to last >= min_time and returns seconds per call."""
    fn()  # warm-up
    t0 = time.perf_counter()
    fn()
    loops = max(1, int(min_time / max(time.perf_counter() - t0, 1e-7)))

    def sample() -> float:
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        return (time.perf_counter() - t0) / loops
    return sample


def torch_step(p: Problem) -> Callable[[], None]:
    """The torch module's forward + backward of L = sum(dh_out * h) on the problem's data, dx and dh0 (dc0) as in
    the engine."""
    rnn = make_torch_rnn(p.config)
    with torch.no_grad():
        for name, w in (("weight_ih_l0", p.W_ih), ("weight_hh_l0", p.W_hh), ("bias_ih_l0", p.b_ih),
                        ("bias_hh_l0", p.b_hh)):
            getattr(rnn, name).copy_(torch.from_numpy(w))
    x = torch.tensor(p.x, requires_grad=True)          # (T, B, I)
    init = [torch.tensor(s[None], requires_grad=True) for s in (p.h0, p.c0) if s is not None]   # (1, B, H)
    dh_out = torch.from_numpy(p.dh_out)                # (T, B, H)
    params = list(rnn.parameters())

    def step() -> None:
        for t in (x, *init, *params):
            t.grad = None
        out, _ = rnn(x, tuple(init) if len(init) == 2 else init[0])
        (out * dh_out).sum().backward()
    return step


def matmul_step() -> Callable[[], None]:
    """One square float64 numpy matmul of MATMUL_N: this machine's BLAS rate, 2 * MATMUL_N**3 flops."""
    rng = np.random.default_rng(0)
    A, B = rng.random((MATMUL_N, MATMUL_N)), rng.random((MATMUL_N, MATMUL_N))
    out = np.empty_like(A)
    return lambda: np.matmul(A, B, out=out)


def measure(cfg: RNNConfig, repeats: int) -> dict[str, float]:
    """Engine, torch.nn.RNN and matmul timed in interleaved rounds, so that a busy machine slows all three alike;
    medians over rounds of the times and of the per-round ratios."""
    p = draw_problem(cfg)
    engine, ref, mm = per_call(lambda: run_engine(p)), per_call(torch_step(p)), per_call(matmul_step())
    plain = per_call(lambda: run_plain(p))
    T, B, I, H = cfg.seq_len, cfg.batch_size, cfg.input_size, cfg.hidden_size
    flops = 6 * T * B * H * (H + I)
    rows = []
    for _ in range(repeats):
        te, tt, tm, tp = engine(), ref(), mm(), plain()
        rate, peak = flops / te / 1e9, 2 * MATMUL_N**3 / tm / 1e9
        rows.append((te, tt, te / tt, rate, peak, rate / peak, tp / tt))
    med = [statistics.median(col) for col in zip(*rows)]
    return dict(zip(("engine_s", "torch_s", "ratio", "gflops", "peak_gflops", "of_peak", "plain_ratio"), med))


def _load() -> str:
    """The 1, 5 and 15 minute load averages: a ratio means little on a busy machine."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ----------------------------------------------------------------------------------------------------------------------
# main

def main(args: argparse.Namespace = ARGS) -> int:
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    module = {"rnn": "torch.nn.RNN", "lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU"}[args.cell]
    print(f"cell {args.cell} against {module}; numpy {np.__version__} (BLAS threads: {blas}), torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), float64 throughout; medians of {args.repeats} "
          f"interleaved rounds; load average before: {_load()}")
    head = (f"{'config':<34} {'engine ms':>10} {'torch ms':>9} {'ratio':>6} {'plain':>6} {'GFLOP/s':>8} "
            f"{'matmul GFLOP/s':>15} {'of matmul':>10}")
    print(head)
    print("-" * len(head))
    ratios = {}
    for name, cfg in CONFIGS.items():
        m = ratios[name] = measure(cfg, args.repeats)
        print(f"{name:<34} {m['engine_s'] * 1e3:>10.3f} {m['torch_s'] * 1e3:>9.3f} {m['ratio']:>6.2f} "
              f"{m['plain_ratio']:>6.2f} "
              f"{m['gflops']:>8.2f} {m['peak_gflops']:>15.2f} {m['of_peak']:>10.1%}")
    print()
    print(f"ratio: engine (run_engine: the Trace and the full gradients) / {module} forward+backward, same data, "
          f"same loss;")
    print("  plain: the same ratio for the engine's plain form (run_plain: the cell's derivation, the form to read).")
    print(f"  target <= {TARGET} at the large config. GFLOP/s: 6*T*B*H*(H+I) / engine time; matmul: a "
          f"{MATMUL_N}x{MATMUL_N} numpy float64 matmul timed in the same rounds.")
    large = ratios[LARGE]["ratio"]
    print(f"large config: ratio {large:.2f}, target <= {TARGET} {'met' if large <= TARGET else 'NOT met'} "
          f"(cell {args.cell}, load average after: {_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
