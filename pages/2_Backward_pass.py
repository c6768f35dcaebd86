"""Backward pass: BPTT one step at a time, t = T..1, every quantity beside PyTorch autograd."""
import streamlit as st

from bptt.app import backward, flow_panels
from bptt.app.panels import downloads, page_setup
from bptt.app.steps import stepper


def step(k: int) -> None:
    backward.strip(analysis, k)
    backward.equations(analysis, k)
    flow_panels.bug_equation_note(analysis)
    backward.gradient_rows(analysis, k)
    backward.weight_gradients(analysis, k)


cfg, analysis = page_setup("Backward pass", "⬅️")
stepper(backward.describe, step, head=lambda k: backward.header(analysis, k))
st.divider()
flow_panels.truncation_gap(analysis)
backward.animation(analysis)
downloads(cfg, "bw_dl")
