"""The arrays path: download a problem as NPZ, load a student's NPZ of gradients safely, and check it."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from ..cells import cell_of
from ..config import ConfigError, RNNConfig
from ..problem import draw_problem
from .checker import WHOLE, CheckReport, ConfigResult, check_unit, reference, zoo_traces

MAX_UPLOAD_MB = 32
INPUT_KEYS = ("x", "h0", "c0", "dh_out", "W_ih", "W_hh", "b_ih", "b_hh", "config_json")   # the problem's own keys


def expected_shapes(cfg: RNNConfig) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(required, optional) key -> shape: the results (dx, dh0, dc0 for the LSTM, the four gradients), and the
    per-step quantities by the export's names (the cell's own, and the running sums)."""
    cell = cell_of(cfg.cell)
    T, B, I, H = cfg.seq_len, cfg.batch_size, cfg.input_size, cfg.hidden_size
    G = cell.G * H
    required = {"dx": (T, B, I), **{d: (B, H) for d in cell.initial}, "dW_ih": (G, I), "dW_hh": (G, H),
                "db_ih": (G,), "db_hh": (G,)}
    per_step = {q.name: cell.shape(q.kind, T, B, I, H) for q in (*cell.forward, *cell.backward) if q.name != "dx"}
    per_step.update(dW_ih_acc=(T, G, I), dW_hh_acc=(T, G, H), db_ih_acc=(T, G), db_hh_acc=(T, G))
    return required, per_step


def dims(cfg: RNNConfig) -> dict[str, str]:
    """Each key's shape in letters (G·H rows for a gated cell's weights: 4H for the LSTM, 3H for the GRU)."""
    cell = cell_of(cfg.cell)
    G = "H" if not cell.gates else f"{cell.G}H"
    out = {"dx": "(T, B, I)", "dh0": "(B, H)", "dc0": "(B, H)", "dW_ih": f"({G}, I)", "dW_hh": f"({G}, H)",
           "db_ih": f"({G},)", "db_hh": f"({G},)", "dW_ih_acc": f"(T, {G}, I)", "dW_hh_acc": f"(T, {G}, H)",
           "db_ih_acc": f"(T, {G})", "db_hh_acc": f"(T, {G})"}
    out.update({q.name: f"(T, B, {G})" for q in cell.backward if q.gated})
    return out


class ArraysError(ValueError):
    """An upload that cannot be checked; the message says what to change."""


def problem_npz(cfg: RNNConfig) -> bytes:
    """The inputs and weights of the config's problem (x, h0, c0 for the LSTM, dh_out, W_ih, W_hh, b_ih, b_hh) and
    config_json."""
    p = draw_problem(cfg)
    buf = io.BytesIO()
    extra = {} if p.c0 is None else {"c0": p.c0}
    np.savez(buf, config_json=np.array(cfg.to_json()), x=p.x, h0=p.h0, **extra, dh_out=p.dh_out, **p.weights)
    return buf.getvalue()


def load_npz(data: bytes, cfg: RNNConfig, max_mb: int = MAX_UPLOAD_MB) -> dict[str, np.ndarray]:
    """The gradients in an uploaded NPZ, validated against cfg: loaded with allow_pickle=False, size-limited, keys and
    shapes checked. ArraysError with every problem in words otherwise."""
    if len(data) > max_mb * 2**20:
        raise ArraysError(f"the file is {len(data) / 2**20:.1f} MiB; the limit is {max_mb} MiB")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        kind = "a pickle" if data[:1] == b"\x80" else "not an NPZ (zip) archive"
        raise ArraysError(f"the file is {kind}; save your gradients with np.savez('grads.npz', dx=dx, dh0=dh0, "
                          f"dW_ih=dW_ih, dW_hh=dW_hh, db_ih=db_ih, db_hh=db_hh)")
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            for k in z.files:
                try:
                    out[k] = z[k]
                except ValueError:
                    raise ArraysError(f"key {k!r} holds Python objects (a pickle), which are not loaded for safety; "
                                      f"save plain numbers: np.asarray({k}, dtype=np.float64)") from None
    except ArraysError:
        raise
    except Exception as err:  # noqa: BLE001  (a damaged archive can raise many things)
        raise ArraysError(f"the file cannot be read as NPZ: {err}") from None
    if "config_json" in out:
        try:
            theirs = RNNConfig.from_dict(json.loads(str(out["config_json"])))
        except (ValueError, ConfigError, TypeError):
            theirs = None
        if theirs is not None and theirs.replace(bug="none") != cfg.replace(bug="none"):
            diff = {k: v for k, v in theirs.to_dict().items() if cfg.to_dict()[k] != v and k != "bug"}
            other = ", ".join(f"{k}={v}" for k, v in diff.items())
            raise ArraysError(f"the file's config_json is for another problem ({other}); set the sidebar to that "
                              f"config, or upload gradients for this page's problem")
    required, per_step = expected_shapes(cfg)
    errors = []
    unknown = sorted(set(out) - set(required) - set(per_step) - set(INPUT_KEYS))
    if unknown:
        errors.append(f"unknown keys {', '.join(map(repr, unknown))}: the allowed ones are {', '.join(required)} "
                      f"and, per step, {', '.join(per_step)}")
    missing = [k for k in required if k not in out]
    if missing:
        errors.append(f"missing keys {', '.join(map(repr, missing))} (all {len(required)} are needed: "
                      f"{', '.join(required)})")
    for k, want in {**required, **per_step}.items():
        if k in out:
            a = out[k]
            if a.dtype.kind not in "fiu":
                errors.append(f"{k} has dtype {a.dtype}; expected float64 numbers")
            elif a.shape != want:
                errors.append(f"{k} has shape {a.shape}; expected {want} = {dims(cfg).get(k, '(T, B, H)')}")
    if errors:
        raise ArraysError("; ".join(errors))
    return {k: v for k, v in out.items() if k not in INPUT_KEYS}


def check_arrays(arrays: dict[str, np.ndarray], cfg: RNNConfig) -> CheckReport:
    """Compare uploaded gradients (torch.nn.RNN layout, time-major) with the reference of cfg's problem."""
    cfg = cfg.replace(bug="none")
    p = draw_problem(cfg)
    problems = []
    for k, a in arrays.items():
        if a.dtype != np.float64:
            problems.append({"quantity": k, "t": None, "message": f"{k} has dtype {a.dtype}; expected float64 "
                                                                 f"(float32 rounds at ~1e-7, far above the tolerance)"})
    per = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}

    def get(q: str, t: int | None) -> np.ndarray | None:
        if t is None:
            return per.get(q) if q in WHOLE else None
        a = per.get(q)
        return None if a is None or a.ndim == 0 or q in WHOLE and q != "dx" else a[t]

    if "dc0" not in expected_shapes(cfg)[0]:
        per.pop("dc0", None)

    unit = check_unit("arrays", get, problems, reference(p), zoo_traces(p))
    return CheckReport("arrays", ["arrays"], [ConfigResult(cfg, [unit])])
