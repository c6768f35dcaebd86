"""Verification: every comparison, the final gradients of three implementations, and gradcheck."""
import streamlit as st

from bptt.app import verification
from bptt.app.panels import config_line, downloads, page_setup, verdict

cfg, analysis = page_setup("Verification", "✅")
st.title("Verification")
st.caption(config_line(cfg))
st.markdown(verdict(analysis))
st.markdown("Pass means max |implementation − reference| ≤ tol · max |reference| + floor (norm-wise relative "
            "error). The floor allows for the last bit in which NumPy's and PyTorch's tanh may differ, carried "
            "through the backward pass: the engine's backward is replayed on PyTorch's forward values and twice "
            "the change is the floor. It is 0 for relu and matters only where tanh saturates; a mistake in the "
            "backward is in both runs, so the floor never hides it.")
st.subheader("Per quantity")
verification.summary_table(analysis)
st.subheader("Every comparison, per timestep")
st.caption("Forward quantities for t = 1..T, then the backward ones in the order BPTT computes them (t = T..1). "
           "Rows without t compare whole sequences and final gradients. A gated quantity has one row per gate block: "
           "`d_gates [f]` is the forget gate's block of d_gates, as the heatmaps and the downloads name it.")
verification.full_table(analysis)
st.subheader("Final results, as the exercise printed them (6 decimals)")
verification.side_by_side(analysis)
st.subheader("gradcheck of the hand-written torch operator")
verification.gradcheck(analysis)
st.subheader("The bug zoo of this cell")
verification.bug_zoo(cfg)
st.divider()
downloads(cfg, verification.DOWNLOADS_KEY)
