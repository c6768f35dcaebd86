"""Plotly figure builders for the app: heatmaps, difference maps, the unrolled-network strip, the animation. No streamlit."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# ----------------------------------------------------------------------------------------------------------------------
# conventions

DIVERGING = "RdBu_r"          # red positive, blue negative, white at zero
SEQUENTIAL = "Viridis"        # for log10 |diff|
DIFF_FLOOR = 1e-18            # |diff| below this draws as the floor, so exact zeros still have a colour
TEXT_CELLS = 400              # print values in the cells only up to this many cells
FONT = dict(size=12)

# axis titles by the kind of matrix: rows, columns
AXES = {
    "BH": ("batch b", "hidden unit j"),
    "BI": ("batch b", "input i"),
    "HI": ("hidden unit j", "input i"),
    "HH": ("hidden unit j", "hidden unit k"),
    "1H": ("", "hidden unit j"),
}


def as_matrix(a: np.ndarray) -> np.ndarray:
    """A 1-D bias vector as a 1 × H row, anything 2-D unchanged."""
    a = np.asarray(a)
    return a[None, :] if a.ndim == 1 else a


def colour_range(*arrays: np.ndarray) -> float:
    """The largest finite |value| over all arrays (all timesteps), for one fixed symmetric colour range; 1 if none."""
    m = 0.0
    for a in arrays:
        a = np.asarray(a)
        fin = a[np.isfinite(a)]
        if fin.size:
            m = max(m, float(np.abs(fin).max()))
    return m if m > 0 else 1.0


def _height(rows: int, cols: int, min_h: int = 180, max_h: int = 420) -> int:
    """A figure height that keeps cells roughly square in a third of a wide page."""
    per_row = max(4.0, min(36.0, 340.0 / max(cols, 1)))
    return int(min(max_h, max(min_h, 70 + rows * per_row)))


def _layout(title: str, rows: int, cols: int, axes: str) -> dict:
    """The layout of one heatmap: titled axes named by their index, rows top to bottom."""
    ylab, xlab = AXES.get(axes, ("", ""))
    return dict(
        title=dict(text=title, font=dict(size=13), x=0.0, xanchor="left"),
        height=_height(rows, cols), margin=dict(l=10, r=10, t=36, b=10), font=FONT, plot_bgcolor="#f3f3f3",
        xaxis=dict(title=dict(text=xlab, standoff=2, font=dict(size=11)), side="bottom", showgrid=False,
                   zeroline=False, dtick=1 if cols <= 16 else None),
        yaxis=dict(title=dict(text=ylab, standoff=2, font=dict(size=11)), autorange="reversed", showgrid=False,
                   zeroline=False, dtick=1 if rows <= 10 else None, showticklabels=rows > 1),
    )


def _figure(traces: list, title: str, rows: int, cols: int, axes: str) -> go.Figure:
    """One figure from plain trace dicts (building dicts first is several times faster than update_* calls)."""
    return go.Figure(dict(data=[t for t in traces if t is not None], layout=_layout(title, rows, cols, axes)))


def _nonfinite_markers(z: np.ndarray) -> dict | None:
    """Crosses on the cells that are inf or nan (at most 2000 of them)."""
    bad = np.argwhere(~np.isfinite(z))
    if bad.size == 0:
        return None
    bad = bad[:2000]
    return dict(type="scatter", x=bad[:, 1], y=bad[:, 0], mode="markers", hoverinfo="skip", showlegend=False,
                marker=dict(symbol="x-thin", size=8, line=dict(width=2, color="black")))


# ----------------------------------------------------------------------------------------------------------------------
# heatmaps

def heatmap(values: np.ndarray, name: str, zmax: float, axes: str = "BH", title: str | None = None) -> go.Figure:
    """A signed matrix on the diverging scale, symmetric about zero with a fixed range ±zmax; non-finite cells crossed."""
    z = as_matrix(values).astype(np.float64, copy=False)
    rows, cols = z.shape
    zf = np.where(np.isfinite(z), z, np.nan)
    ylab, xlab = AXES.get(axes, ("row", "column"))
    yname = ylab.split()[-1] if ylab else "row"
    xname = xlab.split()[-1]
    trace = dict(
        type="heatmap", z=zf, zmin=-zmax, zmax=zmax, zmid=0.0, colorscale=DIVERGING,
        colorbar=dict(thickness=10, len=0.9, tickfont=dict(size=10)),
        hovertemplate=f"{name}[{yname}=%{{y}}, {xname}=%{{x}}] = %{{z:.17g}}<extra></extra>",
        xgap=1 if max(rows, cols) <= 30 else 0, ygap=1 if max(rows, cols) <= 30 else 0,
    )
    if z.size <= TEXT_CELLS:
        trace.update(text=[[f"{v:.2f}" if np.isfinite(v) else "" for v in row] for row in z],
                     texttemplate="%{text}", textfont=dict(size=9 if cols > 8 else 10))
    return _figure([trace, _nonfinite_markers(z)], title or name, rows, cols, axes)


def diff_heatmap(impl: np.ndarray, ref: np.ndarray, name: str, axes: str = "BH",
                 title: str | None = None) -> go.Figure:
    """log10 |impl − ref| (floored at 1e-18) on a sequential scale, as float32 to keep the payload small."""
    a, b = as_matrix(impl).astype(np.float64), as_matrix(ref).astype(np.float64)
    with np.errstate(all="ignore"):
        d = np.abs(a - b)
        same_nonfinite = (a == b) | (np.isnan(a) & np.isnan(b))
        d = np.where(np.isfinite(d), d, np.where(same_nonfinite, 0.0, np.nan))
        z = np.log10(np.maximum(d, DIFF_FLOOR)).astype(np.float32)    # nan stays nan: a real mismatch of inf/nan
    rows, cols = z.shape
    ylab, xlab = AXES.get(axes, ("row", "column"))
    yname = ylab.split()[-1] if ylab else "row"
    xname = xlab.split()[-1]
    trace = dict(
        type="heatmap", z=z, zmin=np.log10(DIFF_FLOOR), zmax=0.0, colorscale=SEQUENTIAL,
        colorbar=dict(title=dict(text="log10 |diff|", side="right", font=dict(size=10)), thickness=10, len=0.9,
                      tickfont=dict(size=10)),
        hovertemplate=f"log10 |diff| of {name}[{yname}=%{{y}}, {xname}=%{{x}}] = %{{z:.2f}}<extra></extra>",
        xgap=1 if max(rows, cols) <= 30 else 0, ygap=1 if max(rows, cols) <= 30 else 0,
    )
    marks = _nonfinite_markers(np.where(np.isnan(z), np.inf, 0.0))
    return _figure([trace, marks], title or "|NumPy − PyTorch|", rows, cols, axes)


# ----------------------------------------------------------------------------------------------------------------------
# the unrolled network

def unrolled_strip(T: int, current: int | None = None, grad_norms: Sequence[float] | None = None,
                   cuts: Sequence[int] = (), height: int = 210, show_x: bool = True) -> go.Figure:
    """x_t and h_t nodes for t = 1..T (and h_0); grey forward arrows, red gradient arrows (width ∝ norm).

    current: 0-based t to highlight; grad_norms[t]: the norm of what step t sends back to h_{t-1} (0-based);
    cuts: 0-based t where truncated BPTT cuts the carry from step t to t-1.
    """
    labels = T <= 24
    data: list[dict] = []
    xs = np.arange(T + 1)                       # h_0 .. h_T at x = 0 .. T
    y_h, y_x = 0.0, 1.0
    hl = current + 1 if current is not None else None
    h_col = ["#d62728" if (hl is not None and i == hl) else "#4c78a8" for i in xs]
    data.append(dict(
        type="scatter", x=xs, y=[y_h] * (T + 1), mode="markers+text" if labels else "markers",
        marker=dict(size=26 if labels else 10, color=h_col, line=dict(width=0)),
        text=[f"h{i}" for i in xs], textfont=dict(color="white", size=10),
        hovertext=[f"h_{i}" for i in xs], hoverinfo="text", showlegend=False))
    if show_x:
        x_col = ["#d62728" if (hl is not None and i == hl) else "#9ecae9" for i in xs[1:]]
        data.append(dict(
            type="scatter", x=xs[1:], y=[y_x] * T, mode="markers+text" if labels else "markers",
            marker=dict(size=22 if labels else 8, color=x_col, symbol="square"),
            text=[f"x{i}" for i in xs[1:]], textfont=dict(size=10),
            hovertext=[f"x_{i}" for i in xs[1:]], hoverinfo="text", showlegend=False))
    gap = 0.22 if labels else 0.12
    tip = 9 if labels else 6

    def arrows(x0, y0, x1, y1, color, width, symbol, hover=None) -> list[dict]:
        """Arrows as one line trace (None-separated segments) plus a marker trace for the heads."""
        xs_, ys_ = [], []
        for a, b, c, d in zip(x0, y0, x1, y1):
            xs_ += [a, c, None]
            ys_ += [b, d, None]
        out = [dict(type="scatter", x=xs_, y=ys_, mode="lines", line=dict(color=color, width=width),
                    hoverinfo="skip", showlegend=False),
               dict(type="scatter", x=list(x1), y=list(y1), mode="markers", showlegend=False,
                    marker=dict(symbol=symbol, size=tip + width, color=color),
                    hoverinfo="text" if hover else "skip", hovertext=hover)]
        return out

    steps = np.arange(1, T + 1)
    data = arrows(steps - 1 + gap, [y_h + 0.08] * T, steps - gap, [y_h + 0.08] * T, "#999", 1.5,
                  "triangle-right") + data
    if show_x:
        data = arrows(steps, [y_x - 0.15] * T, steps, [y_h + 0.22] * T, "#bbb", 1.2, "triangle-down") + data
    if grad_norms is not None:
        g = np.asarray(grad_norms, dtype=np.float64)
        fin = g[np.isfinite(g)]
        gmax = float(fin.max()) if fin.size and fin.max() > 0 else 1.0
        wmax = 5.4 * min(1.0, 24.0 / T)
        cut = set(cuts)
        groups: dict[tuple[float, str], list[int]] = {}
        for t in range(T):                      # step t (0-based) sends from node t+1 to node t
            if t in cut:
                continue
            v = g[t]
            w = round(0.6 + (wmax if not np.isfinite(v) else wmax * float(v) / gmax), 1)
            col = "#d62728" if current is None or t == current else "rgba(214,39,40,0.45)"
            groups.setdefault((w, col), []).append(t)
        for (w, col), ts in groups.items():
            ts_ = np.asarray(ts)
            data += arrows(ts_ + 1 - gap, [y_h - 0.1] * len(ts), ts_ + gap, [y_h - 0.1] * len(ts), col, w,
                           "triangle-left", [f"gradient sent from h_{t + 1} to h_{t}: norm {g[t]:.3g}" for t in ts])
    ann = [dict(x=t + 0.5, y=y_h - 0.35, text="✂", showarrow=False, font=dict(size=14, color="#555"),
                hovertext=f"truncated: no gradient from step {t + 1} to h_{t}") for t in cuts]
    layout = dict(annotations=ann, height=height, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                  showlegend=False, xaxis=dict(visible=False, range=[-0.6, T + 0.6]),
                  yaxis=dict(visible=False, range=[-0.55, 1.35 if show_x else 0.4]))
    return go.Figure(dict(data=data, layout=layout))


# ----------------------------------------------------------------------------------------------------------------------
# the client-side animation

def backward_animation(series: dict[str, np.ndarray], axes: str = "BH", frame_ms: int = 600) -> go.Figure:
    """Heatmaps of each (T, rows, cols) series side by side, animated in the browser over t = T..1 (backward order)."""
    names = list(series)
    first = next(iter(series.values()))
    T = first.shape[0]
    zmax = {n: colour_range(a) for n, a in series.items()}
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.08)
    order = list(range(T - 1, -1, -1))

    def traces(t: int) -> list[go.Heatmap]:
        out = []
        for k, n in enumerate(names):
            z = np.asarray(series[n][t], dtype=np.float32)
            out.append(go.Heatmap(z=np.where(np.isfinite(z), z, np.nan), zmin=-zmax[n], zmax=zmax[n], zmid=0.0,
                                  colorscale=DIVERGING, showscale=False,
                                  hovertemplate=f"{n}[b=%{{y}}, j=%{{x}}] = %{{z:.6g}}<extra></extra>"))
        return out

    for k, tr in enumerate(traces(order[0])):
        fig.add_trace(tr, row=1, col=k + 1)
    fig.frames = [go.Frame(data=traces(t), name=str(t + 1), traces=list(range(len(names)))) for t in order]
    ylab, xlab = AXES.get(axes, ("", ""))
    fig.update_yaxes(autorange="reversed", title_text=ylab)
    fig.update_xaxes(title_text=xlab)
    rows, cols = first.shape[1], first.shape[2]
    fig.update_layout(
        height=_height(rows, cols * len(names), min_h=260, max_h=520) + 80, margin=dict(l=10, r=10, t=40, b=10),
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.08, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶ play", method="animate",
                                        args=[None, dict(frame=dict(duration=frame_ms, redraw=True),
                                                         transition=dict(duration=0), fromcurrent=True)]),
                                   dict(label="⏸ pause", method="animate",
                                        args=[[None], dict(frame=dict(duration=0, redraw=False),
                                                           mode="immediate")])])],
        sliders=[dict(active=0, x=0.18, y=-0.08, len=0.8, yanchor="top", currentvalue=dict(prefix="t = "),
                      steps=[dict(label=str(t + 1), method="animate",
                                  args=[[str(t + 1)], dict(frame=dict(duration=0, redraw=True), mode="immediate")])
                             for t in order])],
    )
    return fig
