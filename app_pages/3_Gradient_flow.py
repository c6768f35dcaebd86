"""Gradient flow: why gradients vanish or explode back through time, for the current configuration."""
import streamlit as st

from bptt.app import gradient_flow
from bptt.app.panels import config_line, page_setup
from bptt.app.state import get_flow

cfg, analysis = page_setup("Gradient flow", "📉")
st.title("Gradient flow")
st.caption(config_line(cfg))
st.markdown("How much of the gradient survives the trip back through time, and why. Time is shown 1-based "
            "(t = 1..T); `python -m bptt flow --json` prints the same numbers with 0-based t.")
gradient_flow.preset_note(cfg)
report = get_flow(cfg)
gradient_flow.grad_norms_section(cfg, report)
st.divider()
report = gradient_flow.jacobian_section(cfg)
if report.spectrum is not None:       # the vanilla RNN's W_hh and f′
    st.divider()
    gradient_flow.spectrum_section(report)
    st.divider()
    gradient_flow.saturation_section(cfg, report)
st.divider()
gradient_flow.sweep_section(cfg, report)
st.divider()
gradient_flow.cells_section(cfg, report)
gradient_flow.paths_section(cfg, report)
gradient_flow.cells_gap_section(cfg, report)
