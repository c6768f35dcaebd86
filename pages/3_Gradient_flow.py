"""Gradient flow: why gradients vanish or explode back through time, for the current configuration."""
import streamlit as st

from bptt.app import flow_panels
from bptt.app.panels import page_setup

cfg, analysis = page_setup("Gradient flow", "📉")
st.title("Gradient flow")
st.markdown("How much of the gradient survives the trip back through time, and why. Time is shown 1-based "
            "(t = 1..T); `python -m bptt flow --json` prints the same numbers with 0-based t.")
flow_panels.preset_note(cfg)
report = flow_panels.get_flow(cfg)
flow_panels.grad_norms_section(cfg, report)
st.divider()
report = flow_panels.jacobian_section(cfg)
st.divider()
flow_panels.spectrum_section(report)
st.divider()
flow_panels.saturation_section(cfg, report)
st.divider()
flow_panels.sweep_section(cfg, report)
