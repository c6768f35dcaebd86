"""BPTT Explorer: the page list, and the home page (what BPTT is, the unrolled network, the verdict, where next)."""
import streamlit as st

from bptt import memory
from bptt.app.home import DOWNLOADS_KEY, network, next_steps
from bptt.app.navigation import PAGES
from bptt.app.panels import config_line, downloads, page_setup, verdict


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
    st.markdown(f"The cell is a choice (the sidebar's first control): the vanilla RNN above, `torch.nn.LSTM` or "
                f"`torch.nn.GRU`. Now: {config_line(cfg)}.")
    network(analysis)
    st.markdown("### The check against PyTorch")
    st.markdown(verdict(analysis))
    next_steps()
    st.divider()
    downloads(cfg, DOWNLOADS_KEY)


memory.setup()      # once per server process: malloc tuning, the memory janitor (importing bptt does neither)

# st.navigation with the page list of bptt/app/navigation.py (so that this page is called "Home" and every page has its
# icon). The page scripts live in app_pages/, not pages/: a pages/ directory beside this script makes Streamlit use its
# automatic page discovery until this script has run once, so the first deep link after a server start showed a menu
# of "streamlit app" and the bare file names. The addresses are /Forward_pass, /Backward_pass, ...
st.navigation([st.Page(p.script or home, title=p.title, icon=p.icon, default=p.script is None,
                        **({"url_path": p.url_path} if p.script else {})) for p in PAGES]).run()
