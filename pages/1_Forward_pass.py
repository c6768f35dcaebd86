"""Forward pass: step t = 1..T through the RNN, each h_t beside torch.nn.RNN's."""
from bptt.app import forward
from bptt.app.panels import page_setup, viewer_pending

cfg, analysis = page_setup("Forward pass", "➡️")
if not viewer_pending(cfg):
    forward.step_view()
