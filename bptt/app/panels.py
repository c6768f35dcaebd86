"""Shared page pieces: page setup, banners, verdicts, error badges, NumPy | PyTorch | |diff| triplets, downloads."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from .. import figures
from ..analysis import Analysis
from ..bugs import step_of
from ..config import RNNConfig
from .state import NOTICES, current_config, get_analysis, init_state, sidebar, sync_url


def d_pre_label(cfg: RNNConfig) -> str:
    """The UI name of d_pre: d_tanh or d_relu."""
    return f"d_{cfg.nonlinearity}"


# ----------------------------------------------------------------------------------------------------------------------
# page setup

def page_setup(title: str, icon: str = "🔁") -> tuple[RNNConfig, Analysis]:
    """Set up a page: state from the URL on first run, the sidebar, the cached analysis, banners. Returns both."""
    st.set_page_config(page_title=f"{title} · BPTT Explorer", page_icon=icon, layout="wide")
    init_state()
    sidebar()
    cfg = current_config()
    for note in st.session_state.get(NOTICES, []):
        st.warning(note, icon=":material/warning:")
    analysis = get_analysis(cfg)
    sync_url()
    bug_banner(analysis)
    nonfinite_banner(analysis)
    return cfg, analysis


def bug_banner(analysis: Analysis) -> None:
    """If the engine makes a bug on purpose, name it and where it first diverges from autograd (t shown 1-based)."""
    bug = analysis.config.bug
    if bug == "none":
        return
    fd = analysis.first_divergence
    where = (f"It first diverges from autograd in **{fd['quantity']}** at **t = {fd['t'] + 1}**."
             if fd else "In this configuration it happens not to change any number.")
    st.error(f"**Bug on purpose: `{bug}`** — {step_of(bug).note} {where}", icon=":material/bug_report:")


def nonfinite_banner(analysis: Analysis) -> None:
    """Explain inf / nan values (e.g. an exploding relu) instead of failing."""
    if analysis.any_nonfinite:
        n = int(analysis.table["nonfinite"].sum())
        st.warning(f"Some values overflowed to inf or nan ({n:,} entries over all comparisons): the gradients exploded "
                   "beyond float64. They are crossed out (×) in the heatmaps; compare only where both sides are "
                   "finite. Lower hh_scale or seq_len to see finite numbers.", icon=":material/local_fire_department:")


def fmt_err(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def verdict(analysis: Analysis) -> str:
    """The whole check in one line of markdown."""
    tab = analysis.table
    n = tab["quantity"].nunique()
    if analysis.all_passed:
        return (f":green[:material/check_circle:] **Every number matches PyTorch**: {n} quantities, {len(tab):,} comparisons, "
                f"largest relative error {fmt_err(analysis.worst_rel_err)} (tolerance {tab['tol'].iloc[0]:g}).")
    bad = tab[~tab["passed"]]
    return (f":red[:material/cancel:] **{len(bad):,} of {len(tab):,} comparisons fail** ({', '.join(sorted(bad['quantity'].unique()))}); "
            f"largest relative error {fmt_err(analysis.worst_rel_err)}.")


def badge(passed: bool, rel: float) -> str:
    """A markdown error badge: pass/fail and the max relative error."""
    if passed:
        return f":green-badge[✓ matches · rel err {fmt_err(rel)}]"
    return f":red-badge[✗ differs · rel err {fmt_err(rel)}]"


def step_badges(analysis: Analysis, t: int) -> dict[str, tuple[bool, float]]:
    """quantity -> (passed, max_rel_err) of timestep t (0-based), engine vs unrolled autograd."""
    rows = analysis.step_rows(t)
    return {r.quantity: (bool(r.passed), float(r.max_rel_err)) for r in rows.itertuples()}


# ----------------------------------------------------------------------------------------------------------------------
# heatmap triplets

def chart(fig, key: str, on_select=None):
    """A Plotly chart; with on_select (a callback), clicking a point reruns with the selection in session_state[key]."""
    if on_select is None:
        return st.plotly_chart(fig, width="stretch", key=key, config={"displayModeBar": False})
    return st.plotly_chart(fig, width="stretch", key=key, config={"displayModeBar": False}, on_select=on_select,
                           selection_mode="points")


def triplet(label: str, name: str, impl: np.ndarray, ref: np.ndarray, zmax: float, axes: str, key: str,
            check: tuple[bool, float] | None, explain: str = "", ref_name: str = "PyTorch (unrolled autograd)",
            on_select=None) -> None:
    """One quantity: a heading with its error badge, then NumPy | PyTorch | log10 |difference| as one chart `key`."""
    head = f"**{label}**" + (f" &nbsp; {badge(*check)}" if check else "")
    st.markdown(head + (f"  \n<span style='color:#666'>{explain}</span>" if explain else ""),
                unsafe_allow_html=True)
    fig = figures.triplet_figure(impl, ref, name, zmax, axes, ref_name=ref_name)    # one chart: ~4x faster to redraw
    chart(fig if on_select is None else figures.add_cell_picker(fig, impl, name, axes), key, on_select)


# ----------------------------------------------------------------------------------------------------------------------
# colour ranges (one per quantity over all timesteps, cached per config)

@st.cache_resource(max_entries=16)
def _ranges(key: str) -> dict[str, float]:
    return {}


def zmax(analysis: Analysis, quantity: str, ref=None) -> float:
    """The fixed colour range of a quantity: max finite |value| over all t of engine and reference."""
    memo = _ranges(analysis.config.to_json())
    if quantity not in memo:
        a = getattr(analysis.engine, quantity)
        b = getattr(ref if ref is not None else analysis.unrolled, quantity, a)
        memo[quantity] = figures.colour_range(a, b)
    return memo[quantity]


# ----------------------------------------------------------------------------------------------------------------------
# downloads

def _npz(cfg: RNNConfig) -> bytes:
    from .. import export
    return export.npz_bytes(get_analysis(cfg))


def _csv(cfg: RNNConfig) -> bytes:
    from .. import export
    return export.csv_bytes(get_analysis(cfg))


def _script(cfg: RNNConfig) -> str:
    from .. import export
    return export.repro_script(cfg)


def download_data(cfg: RNNConfig) -> dict[str, tuple[str, str, object]]:
    """label -> (file name, mime type, callable producing the bytes) for this config's downloads."""
    stem = "bptt_" + "_".join(f"{k}{v}" for k, v in cfg.differs_from_default().items()) if cfg.differs_from_default() \
        else "bptt_worked_example"
    stem = "".join(ch if ch.isalnum() or ch in "_-." else "-" for ch in stem)[:120]
    return {
        "NPZ (every array)": (f"{stem}.npz", "application/octet-stream", lambda: _npz(cfg)),
        "CSV (long format)": (f"{stem}.csv", "text/csv", lambda: _csv(cfg)),
        "Python script": (f"{stem}_repro.py", "text/x-python", lambda: _script(cfg)),
    }


def downloads(cfg: RNNConfig, key: str) -> None:
    """Download buttons for the trace (NPZ, CSV) and a reproduction script; the files are made on click."""
    st.markdown("**Downloads** — the whole trace (t is 0-based in the files: file t = 0 is t = 1 on screen), and a "
                "self-contained script that recomputes these numbers with NumPy and PyTorch.")
    c = st.columns(3)
    for col, (label, (fname, mime, make)) in zip(c, download_data(cfg).items()):
        col.download_button(label, icon=":material/download:", data=make, file_name=fname, mime=mime, key=f"{key}_{fname.rsplit('.')[-1]}",
                            width="stretch", on_click="ignore")


def comparison_frame(analysis: Analysis) -> pd.DataFrame:
    """The comparison table for display: t shown 1-based."""
    tab = analysis.table.copy()
    tab.insert(1, "t (1-based)", tab["t"] + 1)
    return tab.drop(columns=["t"])
