"""The Home page's pieces: the unrolled-network drawing and where to go next."""
from __future__ import annotations

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
    st.caption("Grey arrows: the forward pass (x_t and h_{t−1} make h_t). Red arrows: the gradient each step sends "
               "back to h_{t−1} in the backward pass; their width is proportional to its norm. Hover for numbers.")


def next_steps() -> None:
    """Links to the other pages."""
    st.markdown("### Where to go next")
    c = st.columns(4)
    c[0].page_link("pages/1_Forward_pass.py", label="Forward pass", icon=":material/arrow_forward:")
    c[0].caption("Step t = 1..T: each h_t beside torch.nn.RNN's.")
    c[1].page_link("pages/2_Backward_pass.py", label="Backward pass", icon=":material/arrow_back:")
    c[1].caption("The core: BPTT step by step, every gradient beside autograd.")
    c[2].page_link("pages/4_Verification.py", label="Verification", icon=":material/fact_check:")
    c[2].caption("Every comparison, the final gradients, gradcheck.")
    c[3].page_link("pages/5_Derivation.py", label="Derivation", icon=":material/functions:")
    c[3].caption("The maths, from the loss to each weight gradient.")
