"""The app's one source of state: the canonical config and step in session_state, the URL, the sidebar, the cache."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from .. import memory
from ..analysis import Analysis, analyze, forward_bytes, trace_bytes, work_bytes
from ..autograd_op import GradcheckResult, gradcheck_op
from ..cells import BUGS as CELL_BUGS
from ..cells import CELLS
from ..config import FIELDS, PRESET_NOTES, PRESETS, ConfigError, RNNConfig, parse_value, preset
from ..fd import FDCheck, fd_check
from ..flow import FlowReport, flow_report
from .navigation import SCRIPTS

CONFIG = "config"          # session_state key: the current RNNConfig
STEP = "step"              # session_state key: the current step, 1..T
NOTICES = "url_notices"    # session_state key: warnings from parsing the URL, shown until the config changes
ERROR = "config_error"     # session_state key: the last refused sidebar change, shown once
CHANGED = "config_changed"  # session_state key: what a cell switch changed besides the cell (e.g. the bug), shown once
PRESET_APPLIED = "preset_applied"   # session_state key: the preset last chosen (None: reset), for its page link
WRITTEN = "url_written"    # session_state key: the query string this session last wrote (a different one: Back)
URL_KEYS = (*FIELDS, "step")
WIDGET = "w_"              # sidebar widget keys are "w_<field>"; the canonical config is never a widget key


# ----------------------------------------------------------------------------------------------------------------------
# cached numerical work: all of it in the process's one memory budget (bptt.memory), keyed on the RNNConfig, read-only

PROGRESS_AFTER = 1.0       # seconds a page waits before it says what for
SMALL_ENTRY = 256          # bytes a scalar cache entry is counted as (so that the budget bounds their number too)
STAGE_TEXT = {
    "engine": "engine: the NumPy forward and backward pass",
    "references": "references: the torch module, the unrolled autograd graph and the hand-written operator",
    "comparison": "comparison: every number against autograd",
}


class Progress:
    """on_status for memory.cached: after PROGRESS_AFTER seconds, a line in the page says what the page waits for."""

    def __init__(self, what: str):
        self.what = what
        self.slot = None

    def __call__(self, s: memory.Status) -> None:
        if s.elapsed < PROGRESS_AFTER:
            return
        if self.slot is None:
            self.slot = st.empty()
        if s.state == "queued":
            more = f" ({s.ahead} more waiting before this one)" if s.ahead else ""
            text = f"Queued behind another computation…{more} Waiting {s.elapsed:.0f} s for a free slot."
        else:
            stage = STAGE_TEXT.get(s.stage, s.stage) or "starting"
            text = f"{self.what} — {stage}… ({s.elapsed:.0f} s)"
        self.slot.info(text, icon=":material/hourglass_top:")

    def done(self) -> None:
        if self.slot is not None:
            self.slot.empty()


def cached_work(key: tuple, compute: Callable[[], Any], what: str, reserve: int = 0) -> Any:
    """memory.cached(key, compute) with the page's progress line while it waits (queued, then each stage)."""
    progress = Progress(what)
    value = memory.cached(key, compute, on_status=progress, reserve=reserve)
    progress.done()
    return value


def get_analysis(cfg: RNNConfig) -> Analysis:
    """The (cached, read-only) Analysis of this config."""
    return cached_work(("analysis", cfg), lambda: analyze(cfg), "Running the engine and PyTorch for this configuration",
                       reserve=work_bytes(cfg))


def get_gradcheck(cfg: RNNConfig) -> GradcheckResult:
    """The (cached) gradcheck verdict of the hand-written torch operator at this config."""
    problem = get_analysis(cfg).problem
    return cached_work(("gradcheck", cfg), lambda: gradcheck_op(problem), "Running torch.autograd.gradcheck",
                       reserve=trace_bytes(cfg))


def get_flow(cfg: RNNConfig, b: int = 0) -> FlowReport:
    """The (cached, read-only) gradient-flow report of this config for batch element b."""
    an = get_analysis(cfg)
    return cached_work(("flow", cfg, b), lambda: flow_report(an.problem, an.engine, b),
                       "Computing the gradient flow (Jacobians, spectrum, hh_scale sweep)",
                       reserve=2 * trace_bytes(cfg))


def get_fd(cfg: RNNConfig, weight: str, index: tuple[int, ...]) -> FDCheck:
    """The (cached) finite-difference check of one weight entry at this config."""
    an = get_analysis(cfg)
    compute = lambda: fd_check(an.problem, weight, index, engine=an.engine, torch_rnn=an.torch_rnn)  # noqa: E731
    if cfg.truncate == 0:       # two forward passes: light work, not queued behind other sessions' analyses
        return memory.cached(("fd", cfg, weight, index), compute, heavy=False, reserve=2 * forward_bytes(cfg))
    return cached_work(("fd", cfg, weight, index), compute, "Finite-difference check (and torch.nn.RNN without "
                       "truncation)", reserve=trace_bytes(cfg))


# ----------------------------------------------------------------------------------------------------------------------
# the URL

def config_from_url(params: Any) -> tuple[RNNConfig, int | None, list[str]]:
    """Config, step and warnings from query params; a bad value falls back to its default, naming what is allowed."""
    notes: list[str] = []
    values: dict[str, Any] = {}
    step: int | None = None
    for key in URL_KEYS:
        raw = params.get_all(key)
        if not raw:
            continue
        if len(raw) > 1:
            notes.append(f"URL parameter `{key}` was given {len(raw)} times ({', '.join(map(repr, raw))}); "
                         f"using the default. Give it once.")
            continue
        if key == "step":
            try:
                step = int(raw[0].strip(), 10)
                if step < 1:
                    raise ValueError
            except ValueError:
                notes.append(f"URL parameter `step` must be an integer in 1..seq_len, got {raw[0]!r}; "
                             f"starting at step 1.")
                step = None
            continue
        try:
            values[key] = parse_value(key, raw[0])
        except ConfigError as err:
            notes.append(f"URL parameter `{key}`: {err}. Using the default, {getattr(RNNConfig(), key)!r}.")
    cfg = None
    while cfg is None:        # a value that does not fit the others (relu for an LSTM) goes; the rest is kept
        try:
            cfg = RNNConfig(**values)
        except ConfigError as err:
            if err.field in values and err.field != "cell":
                notes.append(f"URL parameter `{err.field}`: {err}. Using the default, "
                             f"{getattr(RNNConfig(), err.field)!r}.")
                del values[err.field]
            else:
                notes.append(f"URL parameters refused ({err.field}): {err}. Using the defaults instead.")
                cfg = RNNConfig()
    if step is not None and step > cfg.seq_len:
        notes.append(f"URL parameter `step` must be in 1..{cfg.seq_len} (seq_len), got {step}; using {cfg.seq_len}.")
        step = cfg.seq_len
    long = sorted({v for k in params for v in params.get_all(k) if len(v) > URL_ECHO}, key=len, reverse=True)
    return cfg, step, [_cut_echoes(n, long) for n in notes]


URL_ECHO = 40    # a URL value longer than this is echoed in a warning as its first URL_ECHO characters and "…"


def _cut_echoes(note: str, values: list[str]) -> str:
    """note with every long URL value in it cut to its first URL_ECHO characters (a 5,000-digit value is not shown)."""
    for v in values:
        note = note.replace(v, f"{v[:URL_ECHO]}… ({len(v):,} characters)")
    return note


def url_params(cfg: RNNConfig, step: int) -> dict[str, str]:
    """The query string of this view: every config field and the step."""
    out = {k: (f"{v:g}" if isinstance(v, float) else str(v)) for k, v in cfg.to_dict().items()}
    out["step"] = str(step)
    return out


def sync_url() -> None:
    """Write the current config and step into the query string (only what changed). Streamlit's frontend pushes a
    browser history entry when the query string it is sent differs from the address bar's, and the step viewer moves
    the address bar's step itself (replaceState) before Python hears it: so a config change is a history entry, and a
    step is not."""
    want = url_params(st.session_state[CONFIG], st.session_state[STEP])
    have = st.query_params.to_dict()
    if have != want:
        st.query_params.from_dict(want)
    st.session_state[WRITTEN] = want


def _history_navigation() -> bool:
    """Whether this run is the browser's Back or Forward (Streamlit reruns with that history entry's query string)."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
        ctx = get_script_run_ctx()
        return bool(ctx is not None and ctx.is_history_navigation)
    except (ImportError, AttributeError):        # an internal of Streamlit 1.67: without it, Back is not followed
        return False


def follow_url() -> None:
    """On a later run, adopt the URL's config and step when the browser went Back or Forward to another config. Only
    then: another run's query string may lag behind what the session wrote, and one without a query string (a page
    switch) keeps the session's config."""
    written = st.session_state.get(WRITTEN)
    have = st.query_params.to_dict()
    if written is None or not have or have == written or not _history_navigation():
        return
    cfg, step, notes = config_from_url(st.query_params)
    st.session_state[CONFIG] = cfg
    st.session_state[STEP] = step or 1
    st.session_state[NOTICES] = notes
    st.session_state[PRESET_APPLIED] = None


# ----------------------------------------------------------------------------------------------------------------------
# canonical state

def init_state() -> None:
    """On a session's first run, read the config and step from the URL; later, follow the URL when the browser changed
    it (Back, Forward, an edited address)."""
    if CONFIG in st.session_state:
        follow_url()
        return
    cfg, step, notes = config_from_url(st.query_params)
    st.session_state[CONFIG] = cfg
    st.session_state[STEP] = step or 1
    st.session_state[NOTICES] = notes


def current_config() -> RNNConfig:
    return st.session_state[CONFIG]


def current_step() -> int:
    """The step, 1..T, clamped into the current config's range."""
    T = current_config().seq_len
    k = min(max(int(st.session_state.get(STEP, 1)), 1), T)
    st.session_state[STEP] = k
    return k


def set_step(k: int) -> None:
    st.session_state[STEP] = min(max(int(k), 1), current_config().seq_len)


def set_config(cfg: RNNConfig) -> None:
    """Make cfg current; the step is kept in range and URL warnings are cleared."""
    st.session_state[CONFIG] = cfg
    st.session_state[NOTICES] = []
    set_step(st.session_state.get(STEP, 1))


# ----------------------------------------------------------------------------------------------------------------------
# the sidebar (generated from FIELDS)

GROUPS = {
    "Sizes": ("input_size", "hidden_size", "seq_len", "batch_size"),
    "Problem": ("seed", "nonlinearity", "upstream", "hh_scale"),
    "Experiments": ("truncate", "bug"),
}
LABELS = {
    "input_size": "input_size (I)", "hidden_size": "hidden_size (H)", "seq_len": "seq_len (T)",
    "batch_size": "batch_size (B)", "hh_scale": "hh_scale (W_hh ×)", "truncate": "truncate (K)",
}


def switch_cell(cfg: RNNConfig, cell: str) -> tuple[RNNConfig, list[str]]:
    """cfg with another cell, keeping the sizes, the seed and everything else that applies to it; what had to change
    besides the cell (a bug of the old cell goes back to "none", a gated cell's nonlinearity is tanh), in words."""
    changes, said = {"cell": cell}, []
    if cell != "rnn" and cfg.nonlinearity != "tanh":
        changes["nonlinearity"] = "tanh"
        said.append(f"nonlinearity {cfg.nonlinearity!r} is the vanilla RNN's; the {CELLS[cell].title} has its own")
    if cfg.bug not in CELL_BUGS[cell]:
        changes["bug"] = "none"
        said.append(f"bug {cfg.bug!r} is a {CELLS[cfg.cell].title} bug, so bug is back to 'none'")
    return cfg.replace(**changes), said


def _on_field_change(name: str) -> None:
    value = st.session_state[WIDGET + name]
    try:
        if name == "cell":
            cfg, said = switch_cell(current_config(), value)
            if said:
                st.session_state[CHANGED] = said
        else:
            cfg = current_config().replace(**{name: value})
    except ConfigError as err:
        st.session_state[ERROR] = (err.field, str(err))
        return
    set_config(cfg)


def _on_preset(name: str | None) -> None:
    """A preset replaces the config on the page you are on (and links to where it shows best); reset also resets the
    step."""
    set_config(preset(name) if name else RNNConfig())
    st.session_state[PRESET_APPLIED] = name
    if name is None:
        set_step(1)


# the page that shows each preset best (a preset never switches page by itself: it links there)
PRESET_PAGES = {"Worked example": "Backward pass", "Vanishing gradients": "Gradient flow",
                "Exploding gradients": "Gradient flow", "Long sequence": "Gradient flow",
                "LSTM: the cell state carries the gradient": "Gradient flow",
                "GRU: PyTorch's reset gate": "Derivation"}
RESET_KEY = "preset_reset"


def preset_key(name: str) -> str:
    """The widget key of a preset button, e.g. preset_vanishing_gradients."""
    return "preset_" + "".join(ch if ch.isalnum() else "_" for ch in name.lower())


def sidebar() -> None:
    """The config controls; every widget copies into the canonical config in its on_change callback."""
    cfg = current_config()
    sb = st.sidebar
    sb.markdown("### Configuration")
    err = st.session_state.pop(ERROR, None)
    if err:
        sb.error(f"Not applied — **{err[0]}**: {err[1]}")
    _field(sb, "cell", cfg)                                  # the first choice: which recurrent cell
    for said in st.session_state.pop(CHANGED, []):
        sb.info(f"Switched to the {CELLS[cfg.cell].title}: {said}.", icon=":material/info:")
    with sb.expander("Presets", expanded=False):
        for name in PRESETS:
            st.button(name, key=preset_key(name), on_click=_on_preset, args=(name,), help=PRESET_NOTES.get(name),
                      width="stretch")
        st.button("Reset to defaults", key=RESET_KEY, on_click=_on_preset, args=(None,), width="stretch")
    applied = st.session_state.get(PRESET_APPLIED)
    if applied and cfg == preset(applied):
        page = PRESET_PAGES[applied]
        sb.page_link(SCRIPTS[page], label=f"{applied}: best seen on the {page} page", icon=":material/arrow_outward:")
    for group, names in GROUPS.items():
        sb.caption(group)
        for name in names:
            if name == "nonlinearity" and cfg.cell != "rnn":
                continue                                     # the gated cells' nonlinearities are fixed
            _field(sb, name, cfg)
    sb.caption("The link in the address bar reproduces this view: share it.")


def _field(sb, name: str, cfg: RNNConfig) -> None:
    """One config widget, driven by the canonical config; the bug selector lists only this cell's bugs."""
    f = FIELDS[name]
    key = WIDGET + name
    st.session_state[key] = getattr(cfg, name)      # the canonical config drives the widget
    label = LABELS.get(name, name)
    choices = CELL_BUGS[cfg.cell] if name == "bug" else f.choices
    common = dict(key=key, help=f"{f.help}. Allowed: {f.allowed() if name != 'bug' else ', '.join(choices)}.",
                  on_change=_on_field_change, args=(name,))
    if name == "cell":
        sb.radio(label, choices, horizontal=True, format_func=lambda c: CELLS[c].title.replace("vanilla ", ""),
                 **common)
    elif f.kind is str and len(choices) <= 2:
        sb.radio(label, choices, horizontal=True, **common)
    elif f.kind is str:
        sb.selectbox(label, choices, **common)
    elif f.kind is int:
        sb.number_input(label, min_value=int(f.lo), max_value=int(f.hi), step=1, **common)
    else:
        sb.number_input(label, min_value=float(f.lo), max_value=float(f.hi), step=0.05, format="%.3g", **common)
