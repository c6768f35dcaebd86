"""Forward pass: step t = 1..T through the cell, each gate and state beside the torch module's."""
from bptt.app import forward
from bptt.app.panels import page_setup

cfg, analysis = page_setup("Forward pass", "➡️")
forward.step_view()
