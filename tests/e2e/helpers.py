"""Browser-test helpers: the app's elements, exceptions and Plotly data (server and browser: bptt/browser.py)."""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from bptt.browser import (CHROMIUM_ARGS, IDLE_JS, ROOT, RUN_COUNTER_JS, StreamlitServer,  # noqa: F401
                          browser_launch_kwargs, free_port, is_idle, runs, wait_for_app, wait_for_run_after,
                          wait_until)
from bptt.app.navigation import URL_PATHS as PAGES  # noqa: F401  (page title -> URL path)


def button(page, key: str):
    """The button with this widget key (Streamlit puts class st-key-<key> on its element container)."""
    return page.locator(f".st-key-{key} button")


def exceptions(page) -> list[str]:
    """The text of every exception element on the page."""
    return page.locator('[data-testid="stException"]').all_inner_texts()


def warnings(page) -> list[str]:
    """The text of every warning alert on the page."""
    return page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def step_of(page) -> tuple[int, int]:
    """(k, T) from the "step k of T" text on the Forward / Backward page."""
    m = re.search(r"[Ss]tep (\d+) of (\d+)", main_text(page))
    if not m:
        raise AssertionError("no 'step k of T' on the page")
    return int(m.group(1)), int(m.group(2))


# ----------------------------------------------------------------------------------------------------------------------
# Plotly data

# Each .js-plotly-plot's data, with typed arrays made plain and base64 specs ({dtype, bdata, shape}) left to Python.
PLOTLY_JS = """(sel) => {
  const plain = (v) => {
    if (v === null || v === undefined) return v;
    if (ArrayBuffer.isView(v)) return Array.from(v, (x) => Number.isFinite(x) ? x : null);
    if (Array.isArray(v)) return v.map(plain);
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'object') { const o = {}; for (const k of Object.keys(v)) o[k] = plain(v[k]); return o; }
    return v;
  };
  const out = [];
  for (const el of document.querySelectorAll(sel)) {
    const box = el.closest('[class*="st-key-"]');
    const key = box ? ([...box.classList].find((c) => c.startsWith('st-key-')) || '').slice(7) : null;
    out.push({key, data: (el.data || []).map((tr) => ({type: tr.type, name: tr.name, z: plain(tr.z),
                                                          zmin: tr.zmin, zmax: tr.zmax})),
              layout: {sliders: plain((el.layout || {}).sliders), title: plain((el.layout || {}).title)},
              frames: (el._transitionData && el._transitionData._frames) ? el._transitionData._frames.length : 0,
              active: el._fullLayout && el._fullLayout.sliders && el._fullLayout.sliders[0]
                        ? el._fullLayout.sliders[0].active : null});
  }
  return out;
}"""

DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "<i1", "u1": "<u1", "i2": "<i2", "u2": "<u2", "i4": "<i4", "u4": "<u4",
          "float64": "<f8", "float32": "<f4", "int8": "<i1", "uint8": "<u1", "int16": "<i2", "uint16": "<u2",
          "int32": "<i4", "uint32": "<u4", "u1c": "<u1"}


def decode(v: Any) -> np.ndarray | None:
    """A Plotly data array as float64: nested lists, or a typed-array spec {dtype, bdata (base64), shape}."""
    if v is None:
        return None
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=DTYPES[v["dtype"]]).astype(np.float64)
        shape = v.get("shape")
        if shape is not None:
            dims = [int(s) for s in (shape.split(",") if isinstance(shape, str) else shape)]
            a = a.reshape(dims)
        return a
    if isinstance(v, list) and v and isinstance(v[0], dict) and "bdata" in v[0]:
        return np.stack([decode(r) for r in v])
    return np.array([[np.nan if x is None else x for x in row] if isinstance(row, list) else
                     (np.nan if row is None else row) for row in v], dtype=np.float64)


@dataclass
class Chart:
    """One Plotly chart on the page: its widget key, the z matrix of each heatmap trace, slider state, frame count."""
    key: str | None
    z: list[np.ndarray]
    sliders: Any
    active: int | None
    frames: int


def plotly_charts(page, within: str = "") -> list[Chart]:
    """Every Plotly chart on the page (or inside the `within` selector), with its heatmaps decoded."""
    raw = page.evaluate(PLOTLY_JS, f"{within} .js-plotly-plot".strip())
    out = []
    for c in raw:
        zs = [decode(tr["z"]) for tr in c["data"] if tr.get("type") == "heatmap" and tr.get("z") is not None]
        out.append(Chart(c["key"], [z for z in zs if z is not None], c["layout"].get("sliders"), c["active"],
                         c["frames"]))
    return out


def heatmaps_by_key(page, panel: int = 0) -> dict[str, np.ndarray]:
    """key -> the z of each keyed chart's heatmap number `panel` (a triplet: 0 = NumPy, 1 = reference, 2 = diff)."""
    return {c.key: c.z[panel] for c in plotly_charts(page) if c.key and len(c.z) > panel}


def wait_for_charts(page, n_min: int = 1, timeout: float = 30.0) -> None:
    """Wait until at least n_min Plotly charts have drawn (their data is on the element)."""
    wait_until(lambda: page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].filter((e) => e.data && e._fullLayout).length")
        >= n_min, timeout, what=f"{n_min} plotly charts to draw")
