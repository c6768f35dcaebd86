"""Exports of one analysis: the trace as NPZ or tidy CSV, and a self-contained reproduction script."""
from __future__ import annotations

import inspect
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis import Analysis, Lean
from .bugs import Step, step_of
from .compare import FLOOR_FACTOR, REL_TOL
from .config import RNNConfig
from .engine import FORWARD_QUANTITIES, STEP_QUANTITIES
from .repro import BODY, WHOLE

# ----------------------------------------------------------------------------------------------------------------------
# NPZ

def _array(trace, q: str) -> np.ndarray:
    """Field q of a trace; a lean one decodes it afresh (exact) rather than filling the shared cache with it."""
    return trace.get(q, cached=False) if isinstance(trace, Lean) else getattr(trace, q)


def trace_arrays(an: Analysis) -> dict[str, np.ndarray]:
    """Every exported array by its NPZ key; time-major, 0-based t (see README for the keys)."""
    p, e, u, r = an.problem, an.engine, an.unrolled, an.torch_rnn
    out: dict[str, np.ndarray] = {"config_json": np.array(an.config.to_json())}
    out.update(x=p.x, h0=p.h0, dh_out=p.dh_out, W_ih=p.W_ih, W_hh=p.W_hh, b_ih=p.b_ih, b_hh=p.b_hh)
    for q in (*FORWARD_QUANTITIES, *STEP_QUANTITIES, "dh0"):
        out[q] = _array(e, q)
    out.update(e.gradients)
    out.update(torch_h=_array(r, "h"), torch_dx=_array(r, "dx"), torch_dh0=_array(r, "dh0"),
               **{f"torch_{k}": v for k, v in r.gradients.items()})
    for q in (*FORWARD_QUANTITIES, *STEP_QUANTITIES, "dh0"):
        out[f"ref_{q}"] = _array(u, q)
    return out


def npz_bytes(an: Analysis) -> bytes:
    """The trace as an .npz file (loads with allow_pickle=False)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **trace_arrays(an))
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------------------------------
# CSV

# the index names of each exported quantity's axes (after t): b batch, i input, j hidden unit, k hidden unit of h_{t-1}
CSV_AXES: dict[str, tuple[str, ...]] = {
    **{q: ("t", "b", "j") for q in ("a", "h", "dh_next", "dh_total", "d_pre", "dh_prev")},
    "dx": ("t", "b", "i"), "dh0": ("b", "j"),
    "dW_ih_acc": ("t", "j", "i"), "dW_hh_acc": ("t", "j", "k"), "db_ih_acc": ("t", "j"), "db_hh_acc": ("t", "j"),
    "dW_ih": ("j", "i"), "dW_hh": ("j", "k"), "db_ih": ("j",), "db_hh": ("j",),
}
# one meaning per column: numpy is the engine's value, reference_value its autograd reference's, reference_name which
# reference that is ("unrolled autograd" or "torch.nn.RNN")
CSV_COLUMNS = ["quantity", "t", "b", "i", "j", "k", "numpy", "reference_value", "reference_name"]


def trace_frame(an: Analysis) -> pd.DataFrame:
    """Tidy long table: one row per number, with the engine's value and its autograd reference's."""
    e, u, r = an.engine, an.unrolled, an.torch_rnn
    pairs = {q: (e, q, u, q, "unrolled autograd") for q in (*FORWARD_QUANTITIES, *STEP_QUANTITIES)}
    pairs["dh0"] = (e, "dh0", r, "dh0", "torch.nn.RNN")
    gradients = {k: (v, r.gradients[k], "torch.nn.RNN") for k, v in e.gradients.items()}
    frames = []
    for q in (*pairs, *gradients):                       # one quantity's arrays alive at a time
        if q in pairs:
            src, qs, ref_src, qr, ref_name = pairs[q]
            mine, ref = _array(src, qs), _array(ref_src, qr)
        else:
            mine, ref, ref_name = gradients[q]
        axes = CSV_AXES[q]
        idx = np.indices(mine.shape).reshape(len(axes), -1)
        f = pd.DataFrame({"quantity": np.full(idx.shape[1], q)})
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


_IMPORTS = "from __future__ import annotations\n\nimport sys\n\nimport numpy as np\nimport torch\n"
_MAIN = 'if __name__ == "__main__":\n    sys.exit(main(CONFIG, STEP))\n'


def _script_docstring(config: RNNConfig, filename: str) -> str:
    """The script's docstring: what it is, the config, how to run it and read it, and the bug it makes, if any."""
    step = step_of(config.bug)
    lines = [
        "BPTT for a vanilla RNN by hand in NumPy, checked against PyTorch autograd (torch.nn.RNN), float64.",
        "",
        "Generated by BPTT Explorer (from bptt/repro.py, bptt/engine.py and bptt/bugs.py) for this configuration:",
        "    " + json.dumps(config.to_dict(), sort_keys=True),
        f"Run: python {filename}   (needs numpy and torch). It prints NumPy and PyTorch side by side, one row per "
        "result,",
        "and a last line that starts with PASS (exit code 0) or FAIL (exit code 1).",
    ]
    if step is not Step:
        lines += ["", f"This copy makes the mistake {step.name!r} on purpose: {step.note} Its code is the class "
                      f"{step.__name__} below, marked BUG (on purpose); where it changes a number, the script reports "
                      f"FAIL on {', '.join(step.script)}."]
    return '"""' + "\n".join(lines) + '\n"""\n'


def repro_script(config: RNNConfig, filename: str = "this_file.py") -> str:
    """A standalone NumPy + PyTorch script that recomputes this config's numbers and ends with PASS or FAIL.

    Assembled from real code: a header of constants, the source of bugs.Step and of the config's bug (the class that
    overrides one of Step's hooks, marked BUG (on purpose)), and the source of repro.BODY's functions, in order."""
    step = step_of(config.bug)
    values = [f"    {k!r}: {v!r}," for k, v in config.to_dict().items() if k != "bug"]
    constants = "\n".join([
        "CONFIG = {", *values, "}",
        f"REL_TOL = {REL_TOL!r}          # pass: max |numpy - torch| <= REL_TOL * max |torch| + floor",
        f"FLOOR_FACTOR = {FLOOR_FACTOR!r}      # the floor: FLOOR_FACTOR * how far PyTorch's own h_t moves the result",
        f"WHOLE = {WHOLE!r}  # the results compared, in order",
    ])
    classes = [inspect.getsource(Step)] + ([] if step is Step else [inspect.getsource(step)])
    chosen = f"STEP = {step.__name__}  # " + ("the correct step" if step is Step else f"the mistake {step.name}")
    parts = [_script_docstring(config, filename) + _IMPORTS, constants, *classes, chosen,
             *(inspect.getsource(fn) for fn in BODY), _MAIN]
    return "\n\n".join(part.rstrip("\n") + "\n" for part in parts)


def write_script(config: RNNConfig, path: str | Path) -> Path:
    """Write this config's reproduction script to path (OSError if unwritable)."""
    path = Path(path)
    path.write_text(repro_script(config, filename=path.name))
    return path
