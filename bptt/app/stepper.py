"""The step viewer shared by the Forward and Backward pages: one custom component that steps in the browser.

Python sends every step of a pass once per configuration (bptt/stepview.py builds the bytes; above the budget a chunk
of steps at a time, which the browser asks for and keeps). stepper.js draws them, moves the address bar's `step` at
once, and reports the step back when the user settles, pauses or play ends (state "step", which also carries the chunk
it wants); a click on a weight-gradient cell reports the cell (trigger "cell").
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from .. import memory, stepview
from ..config import RNNConfig
from .state import SMALL_ENTRY, cached_work, current_config, current_step, get_analysis, set_step

HERE = Path(__file__).parent
JS = (HERE / "stepper.js").read_text()
CSS = (HERE / "stepper.css").read_text()
NAME = "bptt_stepper"
SENT = "stepper_sent"        # session_state: page -> (config JSON, lo, hi, start) of the payload last mounted
CLIENT = "stepper_client"    # session_state: the step the browser reported last (so a report resends nothing)
WANTS = "stepper_wants"      # session_state: the 0-based t whose chunk the browser asks for (one run)
CELL = "stepper_cell"        # session_state: the weight-gradient cell clicked last: {"weight", "j", "i"}
OWNER = "stepper_owner"      # session_state: this session's name in the memory budget's holds
BUILD_WORK = 3               # bytes building a payload holds per byte of it (float32 panels, values, the message)
TRANSIT_COPIES = 2           # copies of a payload Streamlit makes to send it (the element's protobuf, the message)
TRANSIT_TTL = 30.0           # seconds they are counted in the budget at most (the session's next payload replaces them)


def key_of(page: str) -> str:
    """The component's key on a page ("stepper_forward", "stepper_backward")."""
    return f"stepper_{page}"


# ----------------------------------------------------------------------------------------------------------------------
# the payload (in the memory budget: cached once per config and chunk, and held while it travels to the browser)

def payload_limit(room: int) -> int:
    """Bytes of values one payload may hold when the memory budget has `room` bytes free: stepview.BUDGET, or a
    fraction of the room when that is less, so that a payload that does not fit is sent in smaller chunks (one is
    built with BUILD_WORK times its size in temporaries, cached, then copied TRANSIT_COPIES times to be sent)."""
    return max(1, min(stepview.BUDGET, room // (BUILD_WORK + TRANSIT_COPIES + 1)))


def get_payload(cfg: RNNConfig, page: str, lo: int, hi: int, start: int) -> bytes:
    """The (cached) viewer payload of steps lo <= t < hi (0-based) of a page, opening at page step `start`. The
    copies Streamlit makes to send it count in the memory budget until this session's next payload or TRANSIT_TTL s
    (the payload itself is counted by the cache)."""
    an = get_analysis(cfg)
    key = ("payload", cfg, page, lo, hi, start)
    work = BUILD_WORK * (hi - lo) * _per_step(cfg, page)
    data = cached_work(key, lambda: stepview.build_payload(an, page, lo, hi, start),
                       "Packing the steps for the browser", reserve=work)
    owner = st.session_state.setdefault(OWNER, f"session-{uuid.uuid4().hex}")
    memory.hold(("payload", owner), TRANSIT_COPIES * len(data), TRANSIT_TTL)
    return data


def _per_step(cfg: RNNConfig, page: str) -> int:
    an = get_analysis(cfg)
    return memory.cached(("per_step", cfg, page), lambda: stepview.per_step_bytes(an, page), nbytes=SMALL_ENTRY,
                         heavy=False)


# ----------------------------------------------------------------------------------------------------------------------
# what the browser reports

def _on_step(page: str) -> None:
    """The browser settled on a step and/or asks for the chunk holding a 0-based t: {"k", "seq"[, "want"]}."""
    rep = (st.session_state.get(key_of(page)) or {}).get("step")
    if not isinstance(rep, dict):
        return
    try:
        k = int(rep.get("k"))
    except (TypeError, ValueError):
        return
    set_step(k)
    st.session_state[CLIENT] = current_step()
    want = rep.get("want")
    if isinstance(want, int) and not isinstance(want, bool):
        st.session_state[WANTS] = want


def _on_cell(page: str) -> None:
    """A weight-gradient cell was clicked: keep it for the finite-difference check."""
    cell = (st.session_state.get(key_of(page)) or {}).get("cell")
    if isinstance(cell, dict) and cell.get("weight") in stepview.WEIGHTS:
        st.session_state[CELL] = cell


def clicked_cell() -> dict[str, Any] | None:
    """The cell of the last click on a weight-gradient heatmap, once: {"weight", "j"[, "i"]}; None otherwise."""
    return st.session_state.pop(CELL, None)


# ----------------------------------------------------------------------------------------------------------------------
# the viewer

def plan(page: str, cfg: RNNConfig, k: int, mounted: bool) -> tuple[int, int, int]:
    """(lo, hi, start) of the payload to mount now: unchanged on a mere step report (the browser keeps the chunks it
    has, so a report resends nothing); the chunk the browser asks for; the chunk holding the step when Python moved
    it (URL, config, reset) or the step left what was sent. start moves only when Python moved the step."""
    T = cfg.seq_len
    t = k - 1 if page == "forward" else T - k
    sents = st.session_state.setdefault(SENT, {})
    sent = sents.get(page) if mounted else None
    same = sent is not None and sent[0] == cfg.to_json()
    want = st.session_state.pop(WANTS, None)
    client = same and st.session_state.get(CLIENT) == k            # the browser is at k already
    limit = payload_limit(memory.room())
    if want is not None and same and 0 <= want < T:
        lo, hi = stepview.chunk(T, _per_step(cfg, page), want, limit, backward=page == "backward")
    elif same and (client or sent[1] <= t < sent[2]):
        lo, hi = sent[1], sent[2]
    else:
        lo, hi = stepview.chunk(T, _per_step(cfg, page), t, limit, backward=page == "backward")
    start = sent[3] if client else k           # the browser is already there: keep the data (and its start) as is
    sents[page] = (cfg.to_json(), lo, hi, start)
    return lo, hi, start


def viewer(page: str) -> None:
    """Mount the step viewer of `page` ("forward" or "backward") for the current config and step."""
    cfg = current_config()
    k = current_step()
    key = key_of(page)
    mounted = key in st.session_state             # the component was on the page in the previous run
    lo, hi, start = plan(page, cfg, k, mounted)
    mount = st.components.v2.component(NAME, js=JS, css=CSS)
    mount(key=key, data=get_payload(cfg, page, lo, hi, start), on_step_change=lambda: _on_step(page),
          on_cell_change=lambda: _on_cell(page), width="stretch")
