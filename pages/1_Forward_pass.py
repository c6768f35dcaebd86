"""Forward pass: step t = 1..T through the RNN, each h_t beside torch.nn.RNN's."""
from functools import partial

from bptt.app import forward
from bptt.app.panels import page_setup
from bptt.app.steps import stepper

cfg, analysis = page_setup("Forward pass", "➡️")
stepper(forward.describe, partial(forward.render_step, analysis), head=partial(forward.header, analysis))
