"""The baseline for benchmarks/bench_app.py: a bare Streamlit page whose button (key step_next) only bumps a counter,
so a click on it costs one bare rerun of the script and nothing else."""
import streamlit as st

st.set_page_config(page_title="bare baseline", layout="wide")
if "count" not in st.session_state:
    st.session_state.count = 1


def _bump() -> None:
    st.session_state.count += 1


st.button("next", key="step_next", on_click=_bump)
st.markdown(f"Step {st.session_state.count} of ∞")
