"""The Home page's pieces: the unrolled-network drawing and where to go next."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from .. import figures
from ..analysis import Analysis
from .backward import cuts
from .panels import chart


def network(analysis: Analysis) -> None:
    """The unrolled network for the current seq_len: grey forward arrows, red gradient arrows (width ∝ norm)."""
    T = analysis.config.seq_len
    norms = np.linalg.norm(analysis.engine.dh_prev.reshape(T, -1), axis=1)
    st.markdown(f"### The network unrolled over T = {T} steps")
    chart(figures.unrolled_strip(T, grad_norms=norms, cuts=cuts(analysis), height=240), "home_strip")
    st.caption("Grey arrows: the forward pass ($x_t$ and $h_{t-1}$ make $h_t$). Red arrows: the gradient each step "
               "sends back to $h_{t-1}$ in the backward pass; their width is proportional to its norm. "
               "Hover for numbers.")


PAGES = [  # (script, label, icon, what it shows)
    ("pages/1_Forward_pass.py", "Forward pass", ":material/arrow_forward:",
     "Step t = 1..T: each h_t beside torch.nn.RNN's."),
    ("pages/2_Backward_pass.py", "Backward pass", ":material/arrow_back:",
     "The core: BPTT step by step, every gradient beside autograd."),
    ("pages/3_Gradient_flow.py", "Gradient flow", ":material/show_chart:",
     "Vanishing and exploding gradients, truncation, the bug zoo."),
    ("pages/4_Verification.py", "Verification", ":material/fact_check:",
     "Every comparison, the final gradients, gradcheck."),
    ("pages/5_Derivation.py", "Derivation", ":material/functions:", "The maths, from the loss to each weight gradient."),
]


def next_steps() -> None:
    """Links to the other pages (those that exist)."""
    root = Path(__file__).resolve().parents[2]
    pages = [p for p in PAGES if (root / p[0]).exists()]
    st.markdown("### Where to go next")
    for col, (script, label, icon, what) in zip(st.columns(len(pages)), pages):
        col.page_link(script, label=label, icon=icon)
        col.caption(what)
