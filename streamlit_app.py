"""BPTT Explorer: the page list, and the home page (what BPTT is, the unrolled network, the verdict, where next)."""
import streamlit as st

from bptt import memory
from bptt.app.home import DOWNLOADS_KEY, network, next_steps
from bptt.app.navigation import PAGES
from bptt.app.panels import downloads, page_setup, verdict


def home() -> None:
    """The home page."""
    cfg, analysis = page_setup("Home", "🔁")
    st.title("BPTT Explorer")
    st.markdown(
        "A recurrent network reads a sequence one step at a time: "
        r"$h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})$, exactly `torch.nn.RNN`. "
        "To train it we need the gradient of the loss with respect to the weights. "
        "**Backpropagation through time (BPTT)** unrolls the network over the T steps and runs ordinary "
        "backpropagation on the unrolled graph: from t = T back to t = 1, each step adds its share to the weight "
        "gradients and passes a gradient on to the step before it."
    )
    st.markdown("This app does that by hand in NumPy, and checks every intermediate number against PyTorch autograd. "
                "Change the network in the sidebar; time is shown 1-based (t = 1..T) everywhere on screen.")
    network(analysis)
    st.markdown("### The check against PyTorch")
    st.markdown(verdict(analysis))
    next_steps()
    st.divider()
    downloads(cfg, DOWNLOADS_KEY)


memory.setup()      # once per server process: malloc tuning, the memory janitor (importing bptt does neither)

# st.navigation instead of pages/ discovery only so that this page is called "Home" in the sidebar; the addresses
# of the other pages (/Forward_pass, /Backward_pass, ...) are the same as with discovery.
st.navigation([st.Page(p.script or home, title=p.title, icon=p.icon, default=p.script is None) for p in PAGES]).run()
