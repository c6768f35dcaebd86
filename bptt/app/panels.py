"""Shared page pieces: page setup, banners, verdicts, charts, downloads."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import export
from ..analysis import Analysis
from ..bugs import step_of
from ..cells import cell_of
from ..config import RNNConfig
from ..engine import carry_cut
from ..stepview import fmt_err
from .state import NOTICES, current_config, get_analysis, init_state, sidebar, sync_url

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
    gate = f" [{fd['gate']}]" if fd and "gate" in fd else ""
    where = (f"It first diverges from autograd in **{fd['quantity']}{gate}** at **t = {fd['t'] + 1}**."
             if fd else "In this configuration it happens not to change any number.")
    st.error(f"**Bug on purpose: `{bug}`** — {step_of(bug, analysis.config.cell).note} {where}",
             icon=":material/bug_report:")


def nonfinite_banner(analysis: Analysis) -> None:
    """Explain inf / nan values (e.g. an exploding relu) instead of failing."""
    if analysis.any_nonfinite:
        n = int(analysis.table["nonfinite"].sum())
        st.warning(f"Some values overflowed to inf or nan ({n:,} entries over all comparisons): the gradients exploded "
                   "beyond float64. They are crossed out (×) in the heatmaps; compare only where both sides are "
                   "finite. Lower hh_scale or seq_len to see finite numbers.", icon=":material/local_fire_department:")


def config_line(cfg: RNNConfig) -> str:
    """The config in one line of markdown, the cell first."""
    c = cell_of(cfg.cell)
    rest = [f"I = {cfg.input_size}", f"H = {cfg.hidden_size}", f"T = {cfg.seq_len}", f"B = {cfg.batch_size}",
            f"seed {cfg.seed}", f"upstream {cfg.upstream}", f"hh_scale {cfg.hh_scale:g}"]
    if cfg.cell == "rnn":
        rest.insert(5, cfg.nonlinearity)
    if cfg.truncate:
        rest.append(f"truncate {cfg.truncate}")
    if cfg.bug != "none":
        rest.append(f"bug `{cfg.bug}`")
    return f"**{c.title}** (`{c.torch_name}`) · " + ", ".join(rest)


def cuts(cfg: RNNConfig) -> list[int]:
    """0-based t where truncated BPTT cuts the carry from step t to t-1 (marked ✂ on the strips)."""
    return [t for t in range(cfg.seq_len) if carry_cut(t, cfg.truncate)]


def verdict(analysis: Analysis) -> str:
    """The whole check in one line of markdown."""
    tab = analysis.table
    n = tab["quantity"].nunique()
    if analysis.all_passed:
        return (f":green[:material/check_circle:] **Every number matches PyTorch**: {n} quantities, "
                f"{len(tab):,} comparisons, largest relative error {fmt_err(analysis.worst_rel_err)} "
                f"(tolerance {tab['tol'].iloc[0]:g}).")
    bad = tab[~tab["passed"]]
    failing = ", ".join(sorted(bad["quantity"].unique()))
    return (f":red[:material/cancel:] **{len(bad):,} of {len(tab):,} comparisons fail** ({failing}); "
            f"largest relative error {fmt_err(analysis.worst_rel_err)}.")


# ----------------------------------------------------------------------------------------------------------------------
# charts

def chart(fig, key: str):
    """A Plotly chart without the mode bar, drawn with its own colours (theme=None: Streamlit's chart theme would
    replace the figure's colour scales)."""
    return st.plotly_chart(fig, width="stretch", key=key, theme=None, config={"displayModeBar": False})


# ----------------------------------------------------------------------------------------------------------------------
# downloads

def _npz(cfg: RNNConfig) -> bytes:
    return export.npz_bytes(get_analysis(cfg))


def _csv(cfg: RNNConfig) -> bytes:
    return export.csv_bytes(get_analysis(cfg))


def _script(cfg: RNNConfig) -> str:
    return export.repro_script(cfg)


def download_data(cfg: RNNConfig) -> dict[str, tuple[str, str, object]]:
    """label -> (file name, mime type, callable producing the bytes) for this config's downloads."""
    stem = "bptt_" + "_".join(f"{k}{v}" for k, v in cfg.differs_from_default().items()) if cfg.differs_from_default() \
        else "bptt_worked_example"
    stem = "".join(ch if ch.isalnum() or ch in "_-." else "-" for ch in stem)[:120]
    return {
        "NPZ": (f"{stem}.npz", "application/octet-stream", lambda: _npz(cfg)),
        "CSV": (f"{stem}.csv", "text/csv", lambda: _csv(cfg)),
        "Python script": (f"{stem}_repro.py", "text/x-python", lambda: _script(cfg)),
    }


def downloads(cfg: RNNConfig, key: str) -> None:
    """Download buttons for the trace (NPZ, CSV) and a reproduction script; the files are made on click."""
    st.markdown("**Downloads** — the whole trace, every array (NPZ) or one number per row (CSV; t is 0-based in the "
                "files: file t = 0 is t = 1 on screen), and a self-contained script that recomputes these numbers "
                "with NumPy and PyTorch.")
    c = st.columns(3)
    for col, (label, (fname, mime, make)) in zip(c, download_data(cfg).items()):
        col.download_button(label, icon=":material/download:", data=make, file_name=fname, mime=mime,
                            key=f"{key}_{fname.rsplit('.')[-1]}",
                            width="stretch", on_click="ignore")


def with_gates(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each gate block named in its quantity, as the heatmaps name it: `d_gates [f]`, `dW_hh_acc [o]`
    (the `gate` column folded in)."""
    tab = table.copy()
    gated = tab["gate"].notna()
    tab.loc[gated, "quantity"] = tab.loc[gated, "quantity"] + " [" + tab.loc[gated, "gate"].astype(str) + "]"
    return tab.drop(columns=["gate"])


def comparison_frame(analysis: Analysis) -> pd.DataFrame:
    """The comparison table for display: t shown 1-based, gate blocks named in the quantity."""
    tab = with_gates(analysis.table)
    tab.insert(1, "t (1-based)", tab["t"] + 1)
    return tab.drop(columns=["t"])
