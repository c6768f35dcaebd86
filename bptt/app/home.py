"""The Home page's pieces: the unrolled-network drawing and where to go next."""
from __future__ import annotations

import numpy as np
import streamlit as st

from .. import figures
from ..analysis import Analysis
from .navigation import PAGES
from .panels import chart, cuts

STRIP_KEY, DOWNLOADS_KEY = "home_strip", "home_dl"


def network(analysis: Analysis) -> None:
    """The unrolled network for the current seq_len: grey forward arrows, red gradient arrows (width ∝ norm)."""
    T = analysis.config.seq_len
    norms = np.linalg.norm(analysis.engine.dh_prev.reshape(T, -1), axis=1)
    st.markdown(f"### The network unrolled over T = {T} steps")
    chart(figures.unrolled_strip(T, grad_norms=norms, cuts=cuts(analysis.config), height=240), STRIP_KEY)
    st.caption("Grey arrows: the forward pass ($x_t$ and $h_{t-1}$ make $h_t$). Red arrows: the gradient each step "
               "sends back to $h_{t-1}$ in the backward pass; their width is proportional to its norm. "
               "Hover for numbers.")


def next_steps() -> None:
    """Links to the other pages."""
    pages = [p for p in PAGES if p.script]
    st.markdown("### Where to go next")
    for row in range(0, len(pages), 3):                     # rows of three: six columns cut the titles at 800 px
        for col, p in zip(st.columns(3), pages[row:row + 3]):
            col.page_link(p.script, label=p.title, icon=p.icon)
            col.caption(p.blurb)
