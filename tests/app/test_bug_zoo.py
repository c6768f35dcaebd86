"""AppTest: every bug of the zoo on the Backward page: its banner (note and first divergence, t shown 1-based) and its
wrong equation in red, both read from bptt/bugs.py."""
from __future__ import annotations

import pytest
from apptools import BACKWARD, app, no_exception

from bptt.analysis import analyze
from bptt.bugs import NAMES, cell_of_bug, step_of
from bptt.config import RNNConfig

# sizes that all differ
SIZES = {"input_size": "3", "hidden_size": "4", "seq_len": "5", "batch_size": "2"}


@pytest.mark.parametrize("bug", NAMES[1:])
def test_every_bug_has_its_banner_and_red_equation(bug: str) -> None:
    cell = cell_of_bug(bug)
    at = app(BACKWARD, cell=cell, bug=bug, **SIZES)
    no_exception(at)
    assert not at.warning
    fd = analyze(RNNConfig(cell=cell, **{k: int(v) for k, v in SIZES.items()}, bug=bug)).first_divergence
    banner = "\n".join(str(e.value) for e in at.error)
    assert f"`{bug}`" in banner and step_of(bug, cell).note in banner
    gate = f" [{fd['gate']}]" if "gate" in fd else ""
    assert f"**{fd['quantity']}{gate}** at **t = {fd['t'] + 1}**" in banner
    if cell != "rnn":       # the gated cells' step viewer (and its equations) comes later
        return
    latex = [str(el.value) for el in at.get("latex")]
    assert any(step_of(bug).equation in v and "c62828" in v for v in latex), latex
