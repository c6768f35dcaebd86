"""The Streamlit-aware part of BPTT Explorer: state and URL sync, sidebar, step controls, shared panels."""
from .panels import page_setup

__all__ = ["page_setup"]
