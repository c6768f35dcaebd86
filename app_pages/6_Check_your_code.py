"""Check your code: your own BPTT, as arrays or as code, against the reference, step by step."""
import streamlit as st

from bptt.app import check
from bptt.app.panels import page_setup

cfg, analysis = page_setup("Check your code", "🧪")
st.title("Check your code")
st.markdown("Wrote your own BPTT for this RNN? Check it against PyTorch autograd on the sidebar's problem: which "
            "quantity first differs, at which step, and what that pattern usually means. Time is 1-based on screen "
            "(t = 1..T) and 0-based in files.")
if cfg.truncate:
    st.warning(f"The check compares with full BPTT: set truncate to 0 in the sidebar (it is {cfg.truncate}).",
               icon=":material/warning:")
    st.stop()
if cfg.bug != "none":
    st.caption(f"The sidebar's bug ({cfg.bug}) is the app's own engine's; your numbers are compared with autograd.")
st.subheader("Your arrays (NPZ)")
check.arrays_section(cfg)
st.subheader("Your code (.py)")
check.code_section(cfg)
