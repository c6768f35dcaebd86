"""Shared AppTest helpers: run the app on a page with URL params, and read its Plotly figures back."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from bptt.app.navigation import SCRIPTS

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "streamlit_app.py")
FORWARD, BACKWARD, FLOW = SCRIPTS["Forward pass"], SCRIPTS["Backward pass"], SCRIPTS["Gradient flow"]
TIMEOUT = 90   # AppTest's default of 3 s is shorter than importing torch


def app(page: str | None = None, **params: str | list[str]) -> AppTest:
    """An AppTest of the app with these query params, run once (on `page` if given)."""
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def decode(v) -> np.ndarray:
    """A Plotly array from the figure JSON (a typed array {dtype, bdata, shape}, or a list with None for gaps)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(s) for s in str(v.get("shape", a.size)).split(",")]).astype(np.float64)
    if np.ndim(v) == 1:
        return np.array([np.nan if x is None else x for x in v], dtype=np.float64)
    return np.asarray(v, dtype=np.float64)


def figures(at: AppTest) -> dict[str, dict]:
    """Every plotly chart's figure JSON, by the chart's user key."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}
