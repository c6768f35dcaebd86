"""The app's page list, defined once: the navigation, the Home page's links, AppTest and the browser tests read it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    """One page of the app."""
    title: str
    script: str | None     # the page script, relative to the repository root; None for Home (streamlit_app.py)
    url_path: str          # the address after the host: "" for Home, else the script's name without its number
    icon: str              # a Material icon (emoji need a font that these machines lack)
    blurb: str             # what it shows, for the Home page's links


PAGES: tuple[PageInfo, ...] = (
    PageInfo("Home", None, "", ":material/home:", "The unrolled network and the verdict."),
    PageInfo("Forward pass", "app_pages/1_Forward_pass.py", "Forward_pass", ":material/arrow_forward:",
             "Step t = 1..T: each h_t beside torch.nn.RNN's."),
    PageInfo("Backward pass", "app_pages/2_Backward_pass.py", "Backward_pass", ":material/arrow_back:",
             "The core: BPTT step by step, every gradient beside autograd."),
    PageInfo("Gradient flow", "app_pages/3_Gradient_flow.py", "Gradient_flow", ":material/show_chart:",
             "Vanishing and exploding gradients, truncation, the bug zoo."),
    PageInfo("Verification", "app_pages/4_Verification.py", "Verification", ":material/fact_check:",
             "Every comparison, the final gradients, gradcheck."),
    PageInfo("Derivation", "app_pages/5_Derivation.py", "Derivation", ":material/functions:",
             "The maths, from the loss to each weight gradient."),
    PageInfo("Check your code", "app_pages/6_Check_your_code.py", "Check_your_code", ":material/rule:",
             "Your own BPTT, as arrays or code, against autograd step by step."),
)
URL_PATHS: dict[str, str] = {p.title: p.url_path for p in PAGES}     # page title -> URL path
SCRIPTS: dict[str, str] = {p.title: p.script for p in PAGES if p.script}   # page title -> page script
