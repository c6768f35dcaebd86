"""Backward pass: BPTT one step at a time, t = T..1, every quantity (every gate) beside PyTorch autograd."""
import streamlit as st

from bptt.app import backward
from bptt.app.panels import downloads, page_setup

cfg, analysis = page_setup("Backward pass", "⬅️")
backward.step_view(analysis)
st.divider()
backward.truncation_gap(analysis)
downloads(cfg, backward.DOWNLOADS_KEY)
