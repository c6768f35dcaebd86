"""Derivation: BPTT for this RNN, from the loss to each weight gradient."""
import streamlit as st

from bptt.app import derivation
from bptt.app.panels import config_line, page_setup

cfg, analysis = page_setup("Derivation", "📐")
st.title("Derivation")
st.caption(config_line(cfg))
derivation.render(cfg)
