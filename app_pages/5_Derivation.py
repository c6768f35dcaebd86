"""Derivation: BPTT for this RNN, from the loss to each weight gradient."""
import streamlit as st

from bptt.app import derivation
from bptt.app.panels import page_setup

cfg, analysis = page_setup("Derivation", "📐")
st.title("Derivation")
derivation.render(cfg)
