"""The Streamlit-aware part of BPTT Explorer: state and URL sync, sidebar, step viewer, one module per page."""
