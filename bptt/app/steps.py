"""Step controls (first / prev / next / last, slider, play / pause) and the fragment that holds a step's content."""
from __future__ import annotations

import time
from typing import Callable

import streamlit as st

from .state import STEP, current_config, current_step, set_step, sync_url

PLAYING = "step_playing"     # session_state: whether play is on
LAST_TICK = "step_last_tick"  # session_state: when play last advanced (monotonic seconds)
TIMER = "step_timer"         # session_state: the run_every the fragment was created with
STEP_BUTTONS = ("step_first", "step_prev", "step_next", "step_last", "step_play")  # True in the run they trigger
SPEEDS = {"2 s / step": 2.0, "1 s / step": 1.0, "½ s / step": 0.5}


def _move(delta: int | None = None, to: int | None = None) -> None:
    set_step(to if to is not None else current_step() + (delta or 0))


def _on_slider(key: str) -> None:
    set_step(st.session_state[key])


def _controls(describe: Callable[[int, int], str]) -> int:
    """Draw the step controls; return the current step (1..T)."""
    T = current_config().seq_len
    k = current_step()
    playing = bool(st.session_state.get(PLAYING, False))
    c = st.columns([1, 1, 1, 1, 1, 1.2, 2.8], vertical_alignment="bottom")
    c[0].button("first", key="step_first", icon=":material/first_page:", on_click=_move, kwargs=dict(to=1),
                disabled=k == 1, width="stretch")
    c[1].button("prev", key="step_prev", icon=":material/chevron_left:", on_click=_move, kwargs=dict(delta=-1),
                disabled=k == 1, width="stretch")
    c[2].button("next", key="step_next", icon=":material/chevron_right:", on_click=_move, kwargs=dict(delta=1),
                disabled=k == T, width="stretch")
    c[3].button("last", key="step_last", icon=":material/last_page:", on_click=_move, kwargs=dict(to=T),
                disabled=k == T, width="stretch")
    if c[4].button("pause" if playing else "play", key="step_play", width="stretch", disabled=T == 1,
                   icon=":material/pause:" if playing else ":material/play_arrow:",
                   type="primary" if playing else "secondary"):
        st.session_state[PLAYING] = not playing
        if not playing and k == T:
            set_step(1)                                   # play from the start when at the end
        st.session_state[LAST_TICK] = time.monotonic()
        st.rerun(scope="app")                             # re-create the fragment with (or without) its timer
    speed = c[5].selectbox("speed", list(SPEEDS), index=1, key="step_speed", label_visibility="collapsed")
    if playing and SPEEDS[speed] != st.session_state.get(TIMER):
        st.rerun(scope="app")                             # a new speed: re-create the fragment's timer
    c[6].caption(describe(k, T))
    if T > 1:
        # keyed by the step: a stale value the browser reports for a step already left (e.g. a timer tick racing
        # the last step of play) belongs to a widget that no longer exists and cannot move the step back
        key = f"step_slider_{k}"
        st.slider("step", 1, T, value=k, key=key, on_change=_on_slider, args=(key,), label_visibility="collapsed")
    return k


def _tick() -> None:
    """While playing, advance one step per timer run; at the end stop and rerun the app to clear the timer."""
    if not st.session_state.get(PLAYING):
        return
    if any(st.session_state.get(key) for key in STEP_BUTTONS):     # this run is a click (pause, next, ...)
        return
    interval = SPEEDS[st.session_state.get("step_speed", "1 s / step")]
    now = time.monotonic()
    if now - st.session_state.get(LAST_TICK, 0.0) < 0.5 * interval:   # a rerun soon after a tick, not the timer
        return
    st.session_state[LAST_TICK] = now
    T = current_config().seq_len
    k = current_step()
    if k >= T:
        st.session_state[PLAYING] = False
        st.rerun(scope="app")
    set_step(k + 1)
    if k + 1 >= T:                                        # the last step: stop; the app rerun draws it untimed
        st.session_state[PLAYING] = False
        st.rerun(scope="app")


def _body(describe: Callable[[int, int], str], render: Callable[[int], None],
          head: Callable[[int], None] | None) -> None:
    _tick()
    if head is not None:
        head(current_step())
    k = _controls(describe)
    sync_url()
    render(k)


def stepper(describe: Callable[[int, int], str], render: Callable[[int], None],
            head: Callable[[int], None] | None = None) -> None:
    """head(step), the step controls and render(step) in one fragment: a click reruns only this; play adds a timer."""
    playing = bool(st.session_state.get(PLAYING, False))
    interval = SPEEDS[st.session_state.get("step_speed", "1 s / step")] if playing else None
    st.session_state[TIMER] = interval
    st.fragment(_body, run_every=interval)(describe, render, head)


__all__ = ["stepper", "STEP"]
