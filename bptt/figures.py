"""Plotly figure builders for the app: heatmaps, triplets, the unrolled strip, the gradient-flow figures."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import get_colorscale, sample_colorscale
from plotly.subplots import make_subplots

# ----------------------------------------------------------------------------------------------------------------------
# conventions

DIVERGING = "RdBu_r"          # red positive, blue negative, white at zero
SEQUENTIAL = "Viridis"        # for log10 |diff|
GATE_SCALE = "Blues"          # for a σ gate's value, 0 (closed, white) to 1 (open, dark blue)
DIFF_FLOOR = 1e-18            # |diff| below this draws as the floor, so exact zeros still have a colour
TEXT_CELLS = 400              # print values in the cells only up to this many cells
TEXT_COLS = 12                # ... and this many columns, so that the text fits in a third of the page
FONT = dict(size=12, family='"Source Sans Pro", "Source Sans 3", sans-serif')   # the app's font (figures draw with
# theme=None, so that Streamlit's chart theme cannot replace their colour scales)

# axis titles by the kind of matrix: rows, columns
AXES = {
    "BH": ("batch b", "hidden unit j"),
    "BI": ("batch b", "input i"),
    "HI": ("hidden unit j", "input i"),
    "HH": ("hidden unit j", "hidden unit k"),
    "1H": ("", "hidden unit j"),
}


def colour_scale(name: str) -> list[list]:
    """A named Plotly colour scale as explicit stops that Streamlit's frontend leaves alone. It replaces the colours
    #000001 … #000040 anywhere in a chart's JSON (its theme's placeholders), even with theme=None: Magma's first stop
    #000004 arrived as #ab63fa (or, with Streamlit's theme, #ffabab), so "dark = blocked" drew light. Such a stop is
    nudged to #010000 + its blue, the same colour to the eye."""
    out = []
    for x, c in get_colorscale(name):
        if c.lower().startswith("#0000") and 1 <= int(c[1:], 16) <= 0x40:
            c = "#01" + c[3:]
        out.append([x, c])
    return out


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
                   zeroline=False, dtick=1 if cols <= 16 else None, automargin=True),
        yaxis=dict(title=dict(text=ylab, standoff=2, font=dict(size=11)), autorange="reversed", showgrid=False,
                   zeroline=False, dtick=1 if rows <= 10 else None, showticklabels=rows > 1, automargin=True),
    )


def _figure(traces: list, title: str, rows: int, cols: int, axes: str) -> go.Figure:
    """One figure from plain trace dicts (building dicts first is several times faster than update_* calls)."""
    return go.Figure(dict(data=[t for t in traces if t is not None], layout=_layout(title, rows, cols, axes)))


def _cell(v: float) -> str:
    """A value as printed inside a heatmap cell."""
    if not np.isfinite(v):
        return ""
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.0e}"


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

def _names(axes: str) -> tuple[str, str]:
    """The index names of a matrix kind for hover text: (row index, column index), e.g. ("b", "j")."""
    ylab, xlab = AXES.get(axes, ("row", "column"))
    return (ylab.split()[-1] if ylab else "row"), xlab.split()[-1]


def _heat_trace(z: np.ndarray, name: str, zmax: float, axes: str) -> dict:
    """The trace of a signed matrix (float64, 2-D): diverging scale ±zmax, values printed in small matrices."""
    rows, cols = z.shape
    yname, xname = _names(axes)
    trace = dict(
        type="heatmap", z=np.where(np.isfinite(z), z, np.nan), zmin=-zmax, zmax=zmax, zmid=0.0,
        colorscale=colour_scale(DIVERGING),
        colorbar=dict(thickness=10, len=0.9, tickfont=dict(size=10)),
        hovertemplate=f"{name}[{yname}=%{{y}}, {xname}=%{{x}}] = %{{z:.17g}}<extra></extra>",
        xgap=1 if max(rows, cols) <= 30 else 0, ygap=1 if max(rows, cols) <= 30 else 0,
    )
    if z.size <= TEXT_CELLS and cols <= TEXT_COLS:
        trace.update(text=[[_cell(v) for v in row] for row in z],
                     texttemplate="%{text}", textfont=dict(size=9 if cols > 8 else 10))
    return trace


def log_diff(impl: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """log10 |impl − ref| in float64, floored at DIFF_FLOOR; the same inf / nan on both sides agrees, else nan.
    Computed in float64 because float32 cannot hold a difference of 1e-16 (callers may store the result as float32)."""
    a, b = as_matrix(impl).astype(np.float64), as_matrix(ref).astype(np.float64)
    with np.errstate(all="ignore"):
        d = np.abs(a - b)
        same_nonfinite = (a == b) | (np.isnan(a) & np.isnan(b))
        d = np.where(np.isfinite(d), d, np.where(same_nonfinite, 0.0, np.nan))
        return np.log10(np.maximum(d, DIFF_FLOOR))                     # nan stays nan: a real mismatch of inf/nan


def _diff_trace(z: np.ndarray, name: str, axes: str) -> dict:
    """The trace of log10 |diff| (from _log_diff) on the sequential scale with its own colour bar."""
    rows, cols = z.shape
    yname, xname = _names(axes)
    return dict(
        type="heatmap", z=z, zmin=np.log10(DIFF_FLOOR), zmax=0.0, colorscale=colour_scale(SEQUENTIAL),
        colorbar=dict(title=dict(text="log10 |diff|", side="right", font=dict(size=10)), thickness=10, len=0.9,
                      tickfont=dict(size=10)),
        hovertemplate=f"log10 |diff| of {name}[{yname}=%{{y}}, {xname}=%{{x}}] = %{{z:.2f}}<extra></extra>",
        xgap=1 if max(rows, cols) <= 30 else 0, ygap=1 if max(rows, cols) <= 30 else 0,
    )


def heatmap(values: np.ndarray, name: str, zmax: float, axes: str = "BH", title: str | None = None) -> go.Figure:
    """A signed matrix on the diverging scale, symmetric about zero (fixed range ±zmax); non-finite cells crossed."""
    z = as_matrix(values).astype(np.float64, copy=False)
    rows, cols = z.shape
    return _figure([_heat_trace(z, name, zmax, axes), _nonfinite_markers(z)], title or name, rows, cols, axes)


# ----------------------------------------------------------------------------------------------------------------------
# triplets: NumPy | reference | log10 |diff| as one figure (one chart redraws ~4x faster than three)

# paper-x domains of the three panels; the gaps hold the middle panel's row ticks, the shared signed colour bar with
# the right panel's row ticks, and the diff colour bar with its title
TRIPLET_DOMAINS = ((0.0, 0.265), (0.305, 0.57), (0.665, 0.93))
TRIPLET_TITLES = ("NumPy engine · {name}", "{ref_name} · {name}", "log10 |NumPy − PyTorch|")


def triplet_figure(impl: np.ndarray, ref: np.ndarray, name: str, zmax: float, axes: str = "BH",
                   titles: Sequence[str] = (), ref_name: str = "PyTorch (unrolled autograd)") -> go.Figure:
    """One figure of three heatmaps side by side: impl and ref on one diverging scale ±zmax, then log10 |impl − ref|.

    data[0] = impl, data[1] = ref, data[2] = the difference; crosses on non-finite cells come after these three.
    """
    a = as_matrix(impl).astype(np.float64, copy=False)
    b = as_matrix(ref).astype(np.float64, copy=False)
    d = log_diff(a, b).astype(np.float32)                         # float32 keeps the figure small
    rows, cols = a.shape
    titles = tuple(titles) or tuple(t.format(name=name, ref_name=ref_name) for t in TRIPLET_TITLES)
    ylab, xlab = AXES.get(axes, ("", ""))
    traces = [_heat_trace(a, name, zmax, axes), _heat_trace(b, name, zmax, axes), _diff_trace(d, name, axes)]
    traces[0].update(showscale=False)                              # impl and ref share the colour bar drawn by ref
    traces[1]["colorbar"].update(x=TRIPLET_DOMAINS[1][1] + 0.008, xanchor="left", xref="paper")
    traces[2]["colorbar"].update(x=TRIPLET_DOMAINS[2][1] + 0.008, xanchor="left", xref="paper")
    marks = [_nonfinite_markers(a), _nonfinite_markers(b), _nonfinite_markers(np.where(np.isnan(d), np.inf, 0.0))]
    layout = dict(height=_height(rows, cols), margin=dict(l=10, r=10, t=36, b=10), font=FONT,
                  plot_bgcolor="#f3f3f3", annotations=[])
    for k, (dom, title) in enumerate(zip(TRIPLET_DOMAINS, titles)):
        sx = "" if k == 0 else str(k + 1)
        traces[k].update(xaxis=f"x{sx}", yaxis=f"y{sx}")
        if marks[k] is not None:
            marks[k].update(xaxis=f"x{sx}", yaxis=f"y{sx}")
        layout[f"xaxis{sx}"] = dict(domain=list(dom), anchor=f"y{sx}", side="bottom", showgrid=False, zeroline=False,
                                    title=dict(text=xlab, standoff=2, font=dict(size=11)),
                                    dtick=1 if cols <= 16 else None, automargin=True)
        layout[f"yaxis{sx}"] = dict(domain=[0.0, 1.0], anchor=f"x{sx}", autorange="reversed", showgrid=False,
                                    zeroline=False, dtick=1 if rows <= 10 else None, showticklabels=rows > 1,
                                    title=dict(text=ylab if k == 0 else "", standoff=2, font=dict(size=11)),
                                    automargin=k == 0)
        layout["annotations"].append(dict(text=title, x=dom[0], y=1.0, xref="paper", yref="paper", xanchor="left",
                                          yanchor="bottom", yshift=6, showarrow=False, font=dict(size=13)))
    return go.Figure(dict(data=traces + [m for m in marks if m is not None], layout=layout))


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
        marker=dict(size=36 if labels else 10, color=h_col, line=dict(width=0)),
        text=[f"h<sub>{i}</sub>" for i in xs], textfont=dict(color="white", size=15),
        hovertext=[f"h_{i}" for i in xs], hoverinfo="text", showlegend=False))
    if show_x:
        x_col = ["#d62728" if (hl is not None and i == hl) else "#c6dbef" for i in xs[1:]]
        data.append(dict(
            type="scatter", x=xs[1:], y=[y_x] * T, mode="markers+text" if labels else "markers",
            marker=dict(size=32 if labels else 8, color=x_col, symbol="square", line=dict(width=1, color="#6b8fb8")),
            text=[f"x<sub>{i}</sub>" for i in xs[1:]],
            textfont=dict(size=15, color=["white" if (hl is not None and i == hl) else "#08306b" for i in xs[1:]]),
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
# gradient flow (the Gradient flow page and the truncation gap)

FLOW_BLUE, FLOW_RED, FLOW_GREY = "#4c78a8", "#d62728", "#888"


def _log_values(v: np.ndarray) -> list[float | None]:
    """Values for a log axis: zeros, negatives and non-finite entries become gaps (None)."""
    v = np.asarray(v, dtype=np.float64)
    return [float(x) if np.isfinite(x) and x > 0 else None for x in v]


def _flow_layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, log_y: bool = True,
                 height: int = 320) -> go.Figure:
    fig.update_layout(title=dict(text=title, font=dict(size=13), x=0.0, xanchor="left"), height=height,
                      margin=dict(l=10, r=10, t=40, b=10), font=FONT, plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0, font=dict(size=10)))
    fig.update_xaxes(title_text=xtitle, showgrid=True, gridcolor="#eee", zeroline=False, automargin=True)
    fig.update_yaxes(title_text=ytitle, showgrid=True, gridcolor="#eee", zeroline=False, automargin=True,
                     type="log" if log_y else "linear", exponentformat="power")
    return _integer_x_ticks(fig)


def _integer_x_ticks(fig: go.Figure) -> go.Figure:
    """Whole-number ticks on a numeric x axis (time steps, distances, indices): never t = 1.5, and the range is the
    data's (half a step beyond each end), so an axis that counts t from 1 shows no 0 tick."""
    xs = [np.asarray(tr.x, dtype=float) for tr in fig.data
          if tr.x is not None and len(tr.x) and np.issubdtype(np.asarray(tr.x).dtype, np.number)]
    if xs:
        lo, hi = min(np.nanmin(x) for x in xs), max(np.nanmax(x) for x in xs)
        fig.update_xaxes(tick0=0, dtick=max(1, int(np.ceil(hi / 12))), range=[lo - 0.5, hi + 0.5])
    return fig


def grad_norm_figure(per_t: np.ndarray, per_batch: np.ndarray | None = None, cuts: Sequence[int] = (),
                     title: str = "‖∂L/∂h_t‖ over time", c_per_t: np.ndarray | None = None) -> go.Figure:
    """‖dL/dh_t‖ for t = 1..T on a log axis (0-based inputs); faint lines per batch element; truncation cuts dashed;
    the LSTM's ‖dL/dc_t‖ (c_per_t) dashed, added last."""
    T = len(per_t)
    ts = np.arange(1, T + 1)
    fig = go.Figure()
    if per_batch is not None and per_batch.shape[1] > 1:
        for b in range(per_batch.shape[1]):
            fig.add_trace(go.Scatter(x=ts, y=_log_values(per_batch[:, b]), mode="lines", name=f"b = {b}",
                                     line=dict(width=1, color="rgba(76,120,168,0.35)"), legendgroup="batch",
                                     showlegend=b == 0,
                                     hovertemplate=f"b = {b}, t = %{{x}}: %{{y:.3e}}<extra></extra>"))
        fig.data[0].name = "each batch element"
    fig.add_trace(go.Scatter(x=ts, y=_log_values(per_t), mode="lines+markers", name="whole batch",
                             line=dict(width=2.5, color=FLOW_RED), marker=dict(size=5 if T <= 60 else 3),
                             hovertemplate="t = %{x}: ‖∂L/∂h_t‖ = %{y:.4e}<extra></extra>"))
    if c_per_t is not None:
        fig.add_trace(go.Scatter(x=ts, y=_log_values(c_per_t), mode="lines+markers", name="‖∂L/∂c_t‖ (dc_total)",
                                 line=dict(width=2.5, color="#2e7d32", dash="dash"), marker=dict(size=4),
                                 hovertemplate="t = %{x}: ‖∂L/∂c_t‖ = %{y:.4e}<extra></extra>"))
    for t in cuts:                       # 0-based t: the carry from step t to t-1 is cut, between t and t+1 (1-based)
        fig.add_vline(x=t + 0.5, line=dict(color=FLOW_GREY, width=1, dash="dash"))
    return _flow_layout(fig, title, "t (1-based)", "‖∂L/∂h_t‖  (log scale)")


def jacobian_norm_figure(distance: np.ndarray, norms: np.ndarray, T: int, b: int = 0) -> go.Figure:
    """‖∂h_T/∂h_s‖₂ against the distance T − s, log scale, with the line at 1."""
    fig = go.Figure(go.Scatter(x=np.asarray(distance), y=_log_values(norms), mode="lines+markers",
                               line=dict(width=2.5, color=FLOW_BLUE), marker=dict(size=5 if T <= 60 else 3),
                               name="‖∂h_T/∂h_s‖₂",
                               hovertemplate="T − s = %{x}: ‖∂h_T/∂h_s‖₂ = %{y:.4e}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color=FLOW_GREY, width=1, dash="dot"))
    return _flow_layout(fig, f"‖∂h_{T}/∂h_s‖₂ against the distance {T} − s (batch element b = {b})",
                        "distance T − s (steps back in time)", "spectral norm  (log scale)")


def spectrum_figure(singular_values: np.ndarray, spectral_radius: float) -> go.Figure:
    """The singular values of W_hh as bars, with the spectral radius and the line at 1."""
    sv = np.asarray(singular_values, dtype=np.float64)
    idx = np.arange(1, len(sv) + 1)
    colours = [FLOW_RED if v > 1 else FLOW_BLUE for v in sv]
    fig = go.Figure(go.Bar(x=idx, y=sv, marker_color=colours, name="singular values σ_i",
                           hovertemplate="σ_%{x} = %{y:.6g}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color="black", width=1.5), annotation_text="1", annotation_position="right")
    fig.add_hline(y=spectral_radius, line=dict(color="#ff7f0e", width=2, dash="dash"),
                  annotation_text=f"spectral radius ρ = {spectral_radius:.3g}", annotation_position="top right",
                  annotation_font=dict(color="#ff7f0e", size=11))
    fig = _flow_layout(fig, "Singular values of W_hh (red: above 1)", "i (largest first)", "σ_i", log_y=False)
    fig.update_layout(showlegend=False, bargap=0.15)
    return fig


def saturation_figure(fprime_mean: np.ndarray, fraction: np.ndarray, nonlinearity: str) -> go.Figure:
    """The saturation map f'(a_t) (mean over the batch; t on x, unit j on y) under the fraction of saturated units."""
    z = np.asarray(fprime_mean, dtype=np.float64).T                            # (H, T)
    H, T = z.shape
    ts = np.arange(1, T + 1)
    name = "1 − h_t²" if nonlinearity == "tanh" else "𝟙[a_t > 0]"
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75], vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=ts, y=np.asarray(fraction) * 100, mode="lines+markers", line=dict(color=FLOW_RED),
                             marker=dict(size=4), showlegend=False,
                             hovertemplate="t = %{x}: %{y:.0f}% of units saturated<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=np.where(np.isfinite(z), z, np.nan), x=ts, y=np.arange(H), zmin=0.0, zmax=1.0,
                             colorscale=colour_scale("Magma"),
                             colorbar=dict(title=dict(text="f′(a)", side="right"), thickness=10, len=0.7, y=0.37),
                             hovertemplate=f"f′(a_t) = {name}, unit j = %{{y}}, t = %{{x}}: %{{z:.4f}}<extra></extra>",
                             xgap=1 if T <= 60 else 0, ygap=1 if H <= 60 else 0), row=2, col=1)
    fig.update_layout(title=dict(text=f"f′(a_t) = {name}, mean over the batch (dark = blocked)", font=dict(size=13),
                                 x=0.0, xanchor="left"),
                      height=int(min(620, max(340, 160 + 12 * H))), margin=dict(l=10, r=10, t=40, b=10), font=FONT,
                      plot_bgcolor="white")
    fig.update_yaxes(title_text="% saturated", range=[0, 100], automargin=True, row=1, col=1)
    fig.update_yaxes(title_text="hidden unit j", autorange="reversed", automargin=True, row=2, col=1)
    fig.update_xaxes(title_text="t (1-based)", automargin=True, row=2, col=1)
    return _integer_x_ticks(fig)


# small scales blue, large red, through purple: every line stays dark enough to read on white
SWEEP_SCALE = [[0.0, "#1f5fa8"], [0.5, "#7b3f9e"], [1.0, "#c62828"]]


def sweep_figure(scales: Sequence[float], norms: np.ndarray, current: float) -> go.Figure:
    """‖dL/dh_t‖ over t for several hh_scale values, overlaid on a log axis; the current scale drawn thick."""
    norms = np.asarray(norms, dtype=np.float64)
    T = norms.shape[1]
    ts = np.arange(1, T + 1)
    fig = go.Figure()
    lo, hi = np.log(min(scales)), np.log(max(scales))
    for s, row in zip(scales, norms):
        this = bool(np.isclose(s, current))
        frac = 0.5 if hi == lo else float((np.log(s) - lo) / (hi - lo))          # blue (small) → red (large)
        colour = "black" if this else sample_colorscale(SWEEP_SCALE, [frac])[0]
        fig.add_trace(go.Scatter(x=ts, y=_log_values(row), mode="lines",
                                 name=f"hh_scale {s:g}" + (" (current)" if this else ""),
                                 line=dict(width=3 if this else 2, color=colour, dash="solid"),
                                 hovertemplate=f"hh_scale {s:g}, t = %{{x}}: %{{y:.3e}}<extra></extra>"))
    fig = _flow_layout(fig, "‖∂L/∂h_t‖ for several hh_scale values (full BPTT, no bug)", "t (1-based)",
                       "‖∂L/∂h_t‖  (log scale)", height=360)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.02))
    return fig


def gap_figure(rel_err: dict[str, float], truncate: int) -> go.Figure:
    """The relative error ‖g_truncated − g_full‖ / ‖g_full‖ of each weight gradient, as bars."""
    names = list(rel_err)
    vals = [float(rel_err[k]) for k in names]
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color="#ff7f0e", text=[f"{v:.2%}" if np.isfinite(v) else str(v)
                                                                         for v in vals],
                           textposition="outside", hovertemplate="%{x}: %{y:.4e}<extra></extra>"))
    fig = _flow_layout(fig, f"Truncation gap (K = {truncate}): ‖g_truncated − g_full‖ / ‖g_full‖", "weight gradient",
                       "relative error", log_y=False, height=280)
    finite = [v for v in vals if np.isfinite(v)]
    fig.update_yaxes(range=[0, max(finite + [1e-12]) * 1.25], tickformat=".0%")
    return fig


# ----------------------------------------------------------------------------------------------------------------------
# the three cells on the same problem (the Gradient flow page)

CELL_TITLES = {"rnn": "vanilla RNN", "lstm": "LSTM", "gru": "GRU"}
CELL_SHORT = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
CELL_COLOURS = {"rnn": FLOW_BLUE, "lstm": "#2e7d32", "gru": "#ef6c00"}


def _time_axis(fig: go.Figure, T: int, **where) -> None:
    """A time axis t = 1..T: no tick at 0 (the range starts just before 1)."""
    fig.update_xaxes(range=[0.5, T + 0.5], tick0=0, dtick=max(1, int(np.ceil(T / 8))), **where)


def cells_norm_figure(scales: Sequence[float], h_norms: dict[str, np.ndarray], c_norms: np.ndarray | None,
                      current: float) -> go.Figure:
    """One panel per cell: ‖∂L/∂h_t‖ over t = 1..T for each hh_scale (the current one black), the LSTM's ‖∂L/∂c_t‖
    dashed beside its ‖∂L/∂h_t‖; one shared log y axis so the cells compare at a glance."""
    cells = list(h_norms)
    T = next(iter(h_norms.values())).shape[1]
    fig = make_subplots(rows=1, cols=len(cells), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[CELL_SHORT.get(c, c) + (" (‖∂L/∂c_t‖ dashed)" if c == "lstm" else "")
                                        for c in cells])
    lo, hi = np.log(min(scales)), np.log(max(scales))
    ts = np.arange(1, T + 1)
    for col, cell in enumerate(cells, start=1):
        rows = [(h_norms[cell], "solid", "h")]
        if cell == "lstm" and c_norms is not None:
            rows.append((c_norms, "dash", "c"))
        for norms, dash, state in rows:
            for s, row in zip(scales, norms):
                this = bool(np.isclose(s, current))
                frac = 0.5 if hi == lo else float((np.log(s) - lo) / (hi - lo))
                colour = "black" if this else sample_colorscale(SWEEP_SCALE, [frac])[0]
                fig.add_trace(go.Scatter(
                    x=ts, y=_log_values(row), mode="lines",
                    line=dict(width=3 if this else 1.6, color=colour, dash=dash),
                    name=f"hh_scale {s:g}" + (" (current)" if this else ""), legendgroup=f"s{s:g}",
                    showlegend=col == 1 and state == "h",
                    hovertemplate=f"{CELL_TITLES.get(cell, cell)}, hh_scale {s:g}, t = %{{x}}: "
                                  f"‖∂L/∂{state}_t‖ = %{{y:.3e}}<extra></extra>"), row=1, col=col)
        _time_axis(fig, T, row=1, col=col)
    fig = _flow_layout(fig, "", "t (1-based)", "", height=360)
    fig.update_layout(margin=dict(l=10, r=10, t=60, b=10), title=None, height=400,
                      legend=dict(orientation="h", yanchor="top", y=-0.3, xanchor="left", x=0.0))
    fig.update_yaxes(title_text="‖∂L/∂h_t‖  (log scale)", row=1, col=1)
    fig.update_annotations(font=dict(size=12))
    for col in range(1, len(cells) + 1):
        _time_axis(fig, T, row=1, col=col)
    return fig


def paths_figure(forget_product: np.ndarray, update_product: np.ndarray, rnn_jacobian: np.ndarray,
                 b: int = 0) -> go.Figure:
    """Against the distance d = T − s: the LSTM's ∏ f along the cell path and the GRU's ∏ z along its direct path
    (means over units), and the vanilla RNN's ‖∂h_T/∂h_s‖₂; log scale, the line at 1."""
    d = np.arange(1, len(forget_product) + 1)
    fig = go.Figure()
    for y, name, cell, what in ((forget_product, "LSTM: ∏ f (cell path)", "lstm", "mean ∏ f"),
                                (update_product, "GRU: ∏ z (direct path)", "gru", "mean ∏ z"),
                                (rnn_jacobian, "vanilla RNN: ‖∂h_T/∂h_s‖₂", "rnn", "‖∂h_T/∂h_s‖₂")):
        fig.add_trace(go.Scatter(x=d, y=_log_values(y), mode="lines+markers", name=name,
                                 line=dict(width=2.5, color=CELL_COLOURS[cell]),
                                 marker=dict(size=5 if len(d) <= 60 else 3),
                                 hovertemplate=f"T − s = %{{x}}: {what} = %{{y:.4e}}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color=FLOW_GREY, width=1, dash="dot"))
    fig = _flow_layout(fig, f"What multiplies the gradient on its way back from step T (batch element b = {b})",
                       "distance T − s (steps back in time)", "factor  (log scale)", height=340)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.25, xanchor="left", x=0.0))
    fig.update_xaxes(range=[0.5, len(d) + 0.5])
    return fig


def cells_gap_figure(truncations: Sequence[int], gap: dict[str, np.ndarray]) -> go.Figure:
    """The truncation gap ‖g_K − g_full‖ / ‖g_full‖ (all four weight gradients) against K, one line per cell."""
    fig = go.Figure()
    for cell, v in gap.items():
        fig.add_trace(go.Scatter(x=list(truncations), y=_log_values(v), mode="lines+markers",
                                 name=CELL_TITLES.get(cell, cell), line=dict(width=2.5, color=CELL_COLOURS[cell]),
                                 hovertemplate=f"{CELL_TITLES.get(cell, cell)}, K = %{{x}}: %{{y:.3e}}<extra></extra>"))
    fig = _flow_layout(fig, "Truncation gap of every cell: ‖g_K − g_full‖ / ‖g_full‖", "K (truncate every K steps)",
                       "relative error  (log scale)", height=320)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.25, xanchor="left", x=0.0))
    ks = np.asarray(list(truncations), dtype=float)
    # a log axis: its range is in log10 units (the integer-tick range _flow_layout set is in data units)
    fig.update_xaxes(type="log", tickvals=list(truncations), dtick=None, tick0=None,
                     range=[np.log10(ks.min()) - 0.08, np.log10(ks.max()) + 0.08] if ks.size else None)
    return fig
