"""Backward pass: BPTT one step at a time, t = T..1, every quantity beside PyTorch autograd."""
import streamlit as st

from bptt.app import backward
from bptt.app.panels import downloads, page_setup, viewer_pending

cfg, analysis = page_setup("Backward pass", "⬅️")
if not viewer_pending(cfg):
    backward.step_view(analysis)
    st.divider()
    backward.truncation_gap(analysis)
downloads(cfg, backward.DOWNLOADS_KEY)
