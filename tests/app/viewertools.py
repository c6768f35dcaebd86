"""AppTest helpers for the step viewer: its payload, and what the browser reports (the component's widget state)."""
from __future__ import annotations

import json

import numpy as np
from streamlit.components.v2.bidi_component.main import _make_trigger_id
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from bptt import stepview


def viewer(at: AppTest):
    """The one step-viewer element on the page (AppTest shows a v2 component as an UnknownElement)."""
    els = [e for e in at.get("bidi_component") if e.proto.component_name.endswith("bptt_stepper")]
    assert len(els) == 1, f"expected one step viewer, found {len(els)}"
    return els[0]


def payload(at: AppTest) -> tuple[dict, np.ndarray]:
    """(header, values) of the viewer's data, decoded like the browser does."""
    return stepview.decode_payload(viewer(at).proto.bytes)


def panel(at: AppTest, group: str, quantity: str, t: int) -> np.ndarray:
    """One heatmap's matrix at 0-based t, from the payload on the page."""
    header, values = payload(at)
    return stepview.panel_values(header, values, group, quantity, t)


def send(at: AppTest, state: dict | None = None, trigger: tuple[str, object] | None = None) -> AppTest:
    """Rerun as the browser does after setStateValue / setTriggerValue: the component's widget state (its whole
    state as JSON) and, for a trigger, the events aggregator's JSON list, beside every other widget's state."""
    el = viewer(at)
    ws = at._tree.get_widget_states()
    if state is not None:
        ws.widgets.append(WidgetState(id=el.proto.id, json_value=json.dumps(state)))
    if trigger is not None:
        ws.widgets.append(WidgetState(id=_make_trigger_id(el.proto.id, "events"),
                                      json_trigger_value=json.dumps([{"event": trigger[0], "value": trigger[1]}])))
    return at._run(ws)


def report_step(at: AppTest, k: int, seq: int = 1, **extra) -> AppTest:
    """The browser settled on page step k (with want=t: and asks for the chunk holding 0-based t)."""
    return send(at, state={"step": {"k": k, "seq": seq, **extra}})


def click_cell(at: AppTest, weight: str, j: int, i: int | None = None) -> AppTest:
    """A click on a cell of a weight-gradient running sum in the viewer."""
    value = {"weight": weight, "j": j} if i is None else {"weight": weight, "j": j, "i": i}
    return send(at, trigger=("cell", value))
