"""Exports of one analysis: the trace as NPZ or tidy CSV, and a self-contained reproduction script."""
from __future__ import annotations

import inspect
import io
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import Analysis
from .bugs import step_of
from .cells import GRADIENTS, cell_of
from .cells.base import INDEX, Step
from .compare import FLOOR_FACTOR, REL_TOL
from .config import RNNConfig
from .engine import WEIGHT_ACC
from .repro import NUMPY_SIDE, STEPS, body, whole

# ----------------------------------------------------------------------------------------------------------------------
# NPZ

def _quantities(an: Analysis) -> tuple[str, ...]:
    """The exported per-step quantities of the analysis's cell, time-major: forward, backward, the four running sums,
    and the initial states' gradients."""
    cell = an.cell
    return (*(q.name for q in cell.forward), *(q.name for q in cell.backward), *WEIGHT_ACC, *cell.initial)


def _sums(trace) -> dict[str, np.ndarray]:
    """The running sums {w_acc: (T, ...)} of a trace (the engine's, or the stored reference's)."""
    return {f"{w}_acc": v for w, v in trace.running_sums().items()}


def trace_arrays(an: Analysis) -> dict[str, np.ndarray]:
    """Every exported array by its NPZ key; time-major, 0-based t (see README for the keys of each cell)."""
    p, e, u, r = an.problem, an.engine, an.unrolled, an.torch_rnn
    out: dict[str, np.ndarray] = {"config_json": np.array(an.config.to_json())}
    out.update(x=p.x, h0=p.h0, **({} if p.c0 is None else {"c0": p.c0}), dh_out=p.dh_out, **p.weights)
    sums, ref_sums = _sums(e), _sums(u)
    for q in _quantities(an):
        out[q] = sums[q] if q in sums else getattr(e, q)
    out.update(e.gradients)
    out.update(torch_h=r.h, torch_dx=r.dx, **{f"torch_{s}": getattr(r, s) for s in an.cell.initial},
               **{f"torch_{k}": v for k, v in r.gradients.items()})
    for q in _quantities(an):
        out[f"ref_{q}"] = ref_sums[q] if q in ref_sums else getattr(u, q)
    return out


def npz_bytes(an: Analysis) -> bytes:
    """The trace as an .npz file (loads with allow_pickle=False)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **trace_arrays(an))
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------------------------
# CSV

# one meaning per column: numpy is the engine's value, reference_value its autograd reference's, reference_name which
# reference that is ("unrolled autograd", or the cell's torch module)
CSV_COLUMNS = ["quantity", "gate", "t", "b", "i", "j", "k", "numpy", "reference_value", "reference_name"]


def csv_axes(an: Analysis, q: str) -> tuple[str, ...]:
    """The index names of an exported quantity's axes: t (per-step), then b batch, i input, j hidden unit (or gate
    row), k hidden unit of h_{t-1}."""
    cell = an.cell
    if q in cell.quantities:
        return ("t", *INDEX[cell.quantities[q].kind])
    if q in WEIGHT_ACC:
        return ("t", *INDEX[cell.weight_kind(q[:-4])])
    if q in GRADIENTS:
        return INDEX[cell.weight_kind(q)]
    return ("b", "j")                                    # dh0, dc0


def _gate_column(an: Analysis, q: str, axes: tuple[str, ...], idx: np.ndarray) -> pd.Series:
    """Which gate block each number's row j belongs to, for gated quantities (empty elsewhere)."""
    cell = an.cell
    gated = cell.gates and (q in WEIGHT_ACC or q in GRADIENTS or (q in cell.quantities and cell.quantities[q].gated))
    if not gated or "j" not in axes:
        return pd.Series(pd.NA, index=range(idx.shape[1]), dtype="string")
    return pd.Series(np.asarray(cell.gates)[idx[axes.index("j")] // an.config.hidden_size], dtype="string")


def trace_frame(an: Analysis) -> pd.DataFrame:
    """Tidy long table: one row per number, with the engine's value and its autograd reference's."""
    e, u, r = an.engine, an.unrolled, an.torch_rnn
    sums, ref_sums = _sums(e), _sums(u)
    frames = []
    for q in (*_quantities(an), *GRADIENTS):             # one quantity's arrays alive at a time
        if q in GRADIENTS:
            mine, ref, ref_name = e.gradients[q], r.gradients[q], an.cell.torch_name
        elif q in an.cell.initial:
            mine, ref, ref_name = getattr(e, q), getattr(r, q), an.cell.torch_name
        elif q in sums:
            mine, ref, ref_name = sums[q], ref_sums[q], "unrolled autograd"
        else:
            mine, ref, ref_name = getattr(e, q), getattr(u, q), "unrolled autograd"
        axes = csv_axes(an, q)
        idx = np.indices(mine.shape).reshape(len(axes), -1)
        f = pd.DataFrame({"quantity": np.full(idx.shape[1], q)})
        f["gate"] = _gate_column(an, q, axes, idx)
        for ax in ("t", "b", "i", "j", "k"):
            f[ax] = pd.array(idx[axes.index(ax)] if ax in axes else [pd.NA] * len(f), dtype="Int64")
        f["numpy"] = mine.reshape(-1)
        f["reference_value"] = ref.reshape(-1)
        f["reference_name"] = ref_name
        frames.append(f)
    return pd.concat(frames, ignore_index=True)[CSV_COLUMNS]


def csv_bytes(an: Analysis) -> bytes:
    """The tidy trace as CSV text (full float64 precision)."""
    return trace_frame(an).to_csv(index=False, float_format="%.17g").encode()


# ----------------------------------------------------------------------------------------------------------------------
# reproduction script

def write_export(an: Analysis, path: str | Path) -> Path:
    """Write the trace to path; .npz or .csv by the extension (ValueError otherwise, OSError if unwritable)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        data = npz_bytes(an)
    elif suffix == ".csv":
        data = csv_bytes(an)
    else:
        raise ValueError(f"the output must end in .npz or .csv, got {str(path)!r}")
    path.write_bytes(data)
    return path


_SOURCE_LOCK = threading.Lock()   # Streamlit serves sessions from threads; the reproduction script reads source
_IMPORTS = "from __future__ import annotations\n\nimport sys\n{}\nimport numpy as np\nimport torch\n"
_MAIN = 'if __name__ == "__main__":\n    sys.exit(main(CONFIG, STEP, {}))\n'


def _script_docstring(config: RNNConfig, filename: str) -> str:
    """The script's docstring: what it is, the config, how to run it and read it, and the bug it makes, if any."""
    step = step_of(config.bug, config.cell)
    cell = cell_of(config.cell)
    lines = [
        f"BPTT for the {cell.title} by hand in NumPy, checked against PyTorch autograd ({cell.torch_name}), float64.",
        "",
        f"Generated by BPTT Explorer (from bptt/repro.py and bptt/cells/{cell.name}.py) for this configuration:",
        "    " + json.dumps(config.to_dict(), sort_keys=True),
        f"Run: python {filename}   (needs numpy and torch). It prints NumPy and PyTorch side by side, one row per "
        "result,",
        "and a last line that starts with PASS (exit code 0) or FAIL (exit code 1).",
    ]
    if step.diverges is not None:
        lines += ["", f"This copy makes the mistake {step.name!r} on purpose: {step.note} Its code is the class "
                      f"{step.__name__} below, marked BUG (on purpose); where it changes a number, the script reports "
                      f"FAIL on {', '.join(step.script)}."]
    return '"""' + "\n".join(lines) + '\n"""\n'


def repro_script(config: RNNConfig, filename: str = "this_file.py") -> str:
    """A standalone NumPy + PyTorch script that recomputes this config's numbers and ends with PASS or FAIL.

    Assembled from real code: a header of constants, the source of the steps (cells.base.Step, the cell's correct
    step and the config's bug, the class that overrides one of its hooks, marked BUG (on purpose)), and the source of
    repro.body(cell)'s functions, in order."""
    step = step_of(config.bug, config.cell)
    correct = STEPS[config.cell]
    values = [f"    {k!r}: {v!r}," for k, v in config.to_dict().items() if k != "bug"]
    constants = "\n".join([
        "CONFIG = {", *values, "}",
        f"REL_TOL = {REL_TOL!r}          # pass: max |numpy - torch| <= REL_TOL * max |torch| + floor",
        f"FLOOR_FACTOR = {FLOOR_FACTOR!r}      # the floor: FLOOR_FACTOR * how far PyTorch's own h_t moves the result",
        f"WHOLE = {whole('rnn')!r}  # the results compared, in order (the LSTM's dc0 too)",
    ])
    with _SOURCE_LOCK:                  # inspect parses with ast, which CPython 3.11 cannot run in two threads at once
        classes = [inspect.getsource(c) for c in (Step, correct, *([] if step is correct else [step]))]
        body_src = [inspect.getsource(fn) for fn in body(config.cell)]
    chosen = f"STEP = {step.__name__}  # " + ("the correct step" if step is correct else f"the mistake {step.name}")
    namespace = "from types import SimpleNamespace\n" if config.cell != "rnn" else ""   # numpy_gated's
    parts = [_script_docstring(config, filename) + _IMPORTS.format(namespace), constants, *classes, chosen,
             *body_src, _MAIN.format(NUMPY_SIDE[config.cell])]
    return "\n\n".join(part.rstrip("\n") + "\n" for part in parts)


def write_script(config: RNNConfig, path: str | Path) -> Path:
    """Write this config's reproduction script to path (OSError if unwritable)."""
    path = Path(path)
    path.write_text(repro_script(config, filename=path.name))
    return path
