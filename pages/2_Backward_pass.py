"""Backward pass: BPTT one step at a time, t = T..1, every quantity beside PyTorch autograd."""
import streamlit as st

from bptt.app import backward, page_setup
from bptt.app.panels import downloads
from bptt.app.steps import stepper


def step(k: int) -> None:
    backward.strip(analysis, k)
    backward.equations(analysis, k)
    backward.gradient_rows(analysis, k)
    backward.weight_gradients(analysis, k)


cfg, analysis = page_setup("Backward pass", "⬅️")
stepper(backward.describe, step, head=lambda k: backward.header(analysis, k))
st.divider()
backward.animation(analysis)
downloads(cfg, "bw_dl")
