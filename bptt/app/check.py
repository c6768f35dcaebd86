"""The Check your code page's pieces: the NPZ arrays path, the code path (local servers only), and the results."""
from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from .. import figures, memory
from ..cells import cell_of
from ..check import arrays as check_arrays
from ..check.checker import CheckReport, UnitResult, cell_refused, cells_named, check_file
from ..check.report import headline, summary_frame, unit_title
from ..check.runner import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT
from ..config import RNNConfig

OPT_IN = "BPTT_ALLOW_CODE_CHECK"        # =1: the person running the server allows code uploads on any address
MAX_CODE_KB = 256
RESULT = "check_result"                  # session_state: (source key, CheckReport) of the last check
CODE_RESULT = "check_code_key"         # session_state: the key of the code last checked (its result is cached)
UPLOAD_WORK = 2                         # bytes an NPZ check holds per byte uploaded (the bytes, the arrays read)
PROBLEM_DL_KEY, NPZ_KEY = "check_problem_dl", "check_npz"            # widgets: the problem's download, the NPZ upload
PY_KEY, PASTE_KEY, RUN_KEY = "check_py", "check_paste", "check_run"  # widgets: the code upload, paste box, run button
FORM_KEY = "check_form"                  # the form that holds the paste box and the run button
TABLE_KEY, FIG_KEY, ROWS_KEY = "check_table", "check_fig", "check_rows"   # prefixes of each result's elements


# ----------------------------------------------------------------------------------------------------------------------
# when code may run

def is_loopback(address: str | None) -> bool:
    """Whether a server.address can be reached only from this machine (unset means every interface: no)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def code_allowed() -> tuple[bool, str]:
    """(allowed, why): code runs only on a server reachable from this machine alone, or when the host opts in."""
    if os.environ.get(OPT_IN, "") == "1":
        return True, f"the person running this server opted in ({OPT_IN}=1)"
    address = st.get_option("server.address")
    if is_loopback(address):
        return True, f"this server listens only on {address}, so only this machine can reach it"
    where = f"on {address}" if address else "on every network interface (server.address is not set)"
    return False, (f"This server listens {where}, so other machines may reach it, and running uploaded code would "
                   f"let them run anything here. Run the check on your own machine with the command below, or start "
                   f"the app with `--server.address 127.0.0.1` (or set {OPT_IN}=1 if you run it for yourself).")


def cli_command(cfg: RNNConfig) -> str:
    """The CLI command that checks a file on this page's config."""
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.differs_from_default().items()
                     if k not in ("bug", "truncate"))
    return f"python -m bptt check my_{cfg.cell}.py {flags}".rstrip()


# ----------------------------------------------------------------------------------------------------------------------
# the two paths

def arrays_section(cfg: RNNConfig) -> None:
    """Download the problem, upload an NPZ of gradients, check it (no code runs on the server)."""
    refused = cell_refused(cfg)
    if refused:
        st.info(refused, icon=":material/info:")
        return
    cell = cell_of(cfg.cell)
    d = check_arrays.dims(cfg)
    required, per_step = check_arrays.expected_shapes(cfg)
    c0 = " `c0` (B, H)," if cfg.cell == "lstm" else ""
    st.markdown(f"1. Download this page's problem ({cell.torch_name}): the inputs `x` (T, B, I), `h0` (B, H),{c0} the "
                f"upstream gradient `dh_out` (T, B, H), the weights `W_ih` {d['dW_ih']}, `W_hh` {d['dW_hh']}, `b_ih`, "
                f"`b_hh` {d['db_ih']}" + (f" (gate blocks {', '.join(cell.gates)} along the rows, PyTorch's order)"
                                         if cell.gates else "") + ", and `config_json`.\n"
                "2. Run your code on it at home.\n"
                f"3. Upload your gradients as NPZ: {', '.join(f'`{k}`' for k in required)} (the {cell.torch_name} "
                f"layout, time-major), and if you have them, per-step arrays with the export's names "
                f"({', '.join(f'`{k}`' for k in _useful(cell, per_step))}, ...; t first, 0-based) to find the step "
                f"where yours first differ.")
    st.download_button("Download the problem (NPZ)", data=lambda: check_arrays.problem_npz(cfg),
                       file_name="bptt_problem.npz", mime="application/octet-stream", icon=":material/download:",
                       key=PROBLEM_DL_KEY, on_click="ignore")
    st.code("p = np.load('bptt_problem.npz')\n"
            "# ... your forward and backward on p['x'], p['h0'], p['dh_out'], p['W_ih'], ...\n"
            f"np.savez('grads.npz', {', '.join(f'{k}={k}' for k in required)})",
            language="python")
    up = st.file_uploader(f"Your gradients (.npz, at most {check_arrays.MAX_UPLOAD_MB} MB)", type=["npz"],
                          key=NPZ_KEY, max_upload_size=check_arrays.MAX_UPLOAD_MB)
    if up is None:
        return
    data = up.getvalue()
    key = ("npz", hashlib.sha256(data).hexdigest(), cfg.to_json())
    with memory.reserved(UPLOAD_WORK * len(data)):     # the upload and its arrays, in the one budget while checked
        try:
            grads = check_arrays.load_npz(data, cfg)
        except check_arrays.ArraysError as err:
            st.error(f"**{up.name} cannot be checked:** {err}", icon=":material/error:")
            return
        _remember(key, lambda: check_arrays.check_arrays(grads, cfg))
    show_result(key)


def _useful(cell, per_step: dict) -> list[str]:
    """The per-step keys most worth uploading: the backward quantities a student has at hand, then a running sum."""
    wanted = [q.name for q in cell.backward if q.name not in ("dx", "dh_next", "dh_total", "dc_next")]
    return [k for k in (*wanted, "dW_ih_acc") if k in per_step]


CODE_CSS = """<style>
.st-key-{paste} textarea {{ font-family: "Source Code Pro", ui-monospace, SFMono-Regular, Menlo, Consolas,
  monospace; font-size: 0.85rem; }}
.st-key-{py} [data-testid="stFileUploaderDropzoneInstructions"] {{ display: none; }}
</style>"""


def code_section(cfg: RNNConfig) -> None:
    """Upload or paste a .py file and check it with the CLI's machinery, when this server may run code. The paste box
    sits in a form, so one click on "Check this code" sends what was typed; an uploaded file wins over pasted code,
    and the page says so before and after the check."""
    if cell_refused(cfg):
        return
    allowed, why = code_allowed()
    if not allowed:
        st.info(why, icon=":material/lock:")
        st.code(cli_command(cfg), language="bash")
        return
    st.caption(f"Code checks are on: {why}. Your file runs in a separate process, limited to "
               f"{DEFAULT_TIMEOUT:g} s and {DEFAULT_MEMORY_MB} MiB.")
    st.html(CODE_CSS.format(paste=PASTE_KEY, py=PY_KEY))
    # Streamlit's limit is in whole MB (it would say "1MB per file"); the real limit, 256 KB, is checked below
    up = st.file_uploader(f"Upload your code (.py, at most {MAX_CODE_KB} KB)", type=["py"], key=PY_KEY,
                          max_upload_size=1)
    if up is not None:
        st.info(f"**{up.name}** will be checked. The paste box below is ignored while a file is uploaded: remove the "
                f"file (×) to check pasted code instead.", icon=":material/upload_file:")
    with st.form(FORM_KEY, border=False, enter_to_submit=False):
        pasted = st.text_area("… or paste your code here", key=PASTE_KEY, height=240,
                              placeholder=PLACEHOLDER.get(cfg.cell, PLACEHOLDER["rnn"]))
        clicked = st.form_submit_button("Check this code", key=RUN_KEY, type="primary")
    if clicked:
        source, name, label = ((up.getvalue(), up.name, f"the uploaded file {up.name}") if up is not None else
                               (pasted.encode(), "pasted.py", "the code pasted in the box"))
        if not source.strip():
            st.error("Nothing to check: paste your code in the box or upload a .py file.", icon=":material/error:")
            st.session_state.pop(CODE_RESULT, None)
        elif len(source) > MAX_CODE_KB * 1024:
            st.error(f"{label[0].upper()}{label[1:]} is {len(source) / 1024:.0f} KB; the limit is {MAX_CODE_KB} KB. "
                     f"Check the functions alone, without data or notebooks' output.", icon=":material/error:")
            st.session_state.pop(CODE_RESULT, None)
        else:
            key = ("code", hashlib.sha256(source).hexdigest(), cfg.to_json(), label)
            _remember(key, lambda: _check_source(source, name, cfg), force=True)
            st.session_state[CODE_RESULT] = key
    key = st.session_state.get(CODE_RESULT)
    if key and key[2] == cfg.to_json():
        st.markdown(f"Checked: **{key[3]}**.")
        show_result(key)


def _check_source(source: bytes, name: str, cfg: RNNConfig) -> CheckReport:
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in Path(name).stem)[:60] or "student"
    with tempfile.TemporaryDirectory(prefix="bptt_upload_") as tmp:
        path = Path(tmp) / f"{safe}.py"
        path.write_bytes(source)
        report = check_file(path, [cfg.replace(bug="none")], cell=cfg.cell)
        named = cells_named(path)
    if report.usage and named and cfg.cell not in named:    # the file's names say another cell than the sidebar's
        report.usage = (f"{name} names {' and '.join(f'{c}_*' for c in named)} functions, but the sidebar's cell is "
                        f"{cfg.cell}: set the sidebar's cell to {named[0]} to check it (or rename your functions "
                        f"{cfg.cell}_step_forward ...).")
    return report


PLACEHOLDER = {"rnn": "def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh): ...",
               "lstm": "def lstm_step_forward(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh): ...",
               "gru": "def gru_step_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh): ..."}


def _remember(key: tuple, make, force: bool = False) -> None:
    """Keep the last check's report in the session, keyed by what was checked, so reruns don't repeat it."""
    last = st.session_state.get(RESULT)
    if force or last is None or last[0] != key:
        with st.spinner("Checking…"):
            st.session_state[RESULT] = (key, make())


# ----------------------------------------------------------------------------------------------------------------------
# results

AXES_OF = {"dx": "BI", "dW_ih": "HI", "dW_hh": "HH", "db_ih": "1H", "db_hh": "1H"}   # the vanilla RNN's


def _axes(cell_name: str, q: str) -> str:
    """The matrix kind of a quantity's heatmap (a gated cell's weights have G·H gate rows)."""
    cell = cell_of(cell_name)
    if q.startswith(("dW", "db")):
        return cell.weight_kind(q)
    if q in cell.quantities:
        return cell.quantities[q].kind
    return AXES_OF.get(q, "BH")


def show_result(key: tuple) -> None:
    last = st.session_state.get(RESULT)
    if last is None or last[0] != key:
        return
    report: CheckReport = last[1]
    if report.usage:
        st.error(report.usage, icon=":material/help:")
        return
    if report.failure:
        f = report.failure
        what = {"timeout": "hit the time limit", "memory": "hit the memory limit", "crash": "ended the process"}.get(
            f.kind, "raised an exception")
        st.error(f"**Your code {what}** ({f.where}).", icon=":material/error:")
        st.code(f.message, language=None)
        if report.output:
            st.caption("What your code printed last:")
            st.code(report.output, language=None)
        return
    if report.units != ["arrays"]:
        st.markdown("Recognised: " + "; ".join(unit_title(u) for u in report.units))
        h = headline(report, screen=True)
        if h["passed"]:
            st.success(f"**{h['title']}**", icon=":material/check_circle:")
        else:
            zoo = f" See it step by step: `python -m bptt verify --bug {h['bug']}`." if h["bug"] else ""
            st.error(f"**{h['title']}**\n\n{h['text']}{zoo}", icon=":material/cancel:")
        st.caption("The evidence, shape by shape:")
    for n in report.notes:
        st.caption(n)
    for c in report.configs:
        for u in c.units:
            unit_result(u, key, c.config.cell)


def unit_result(u: UnitResult, key: tuple, cell: str = "rnn") -> None:
    """The verdict, the table per quantity, the first divergence with its heatmaps, the diagnosis."""
    if u.passed:
        st.success(f"**{unit_title(u.unit)}: everything agrees with PyTorch autograd** "
                   f"({len(u.rows)} comparisons, largest relative error {_worst(u):.1e}).",
                   icon=":material/check_circle:")
    else:
        fd = u.first_divergence
        gate = f" [{fd['gate']}]" if fd.get("gate") else ""
        where = f"**{fd['quantity']}{gate}**" + ("" if fd["t"] is None else f" at **t = {fd['t'] + 1}** (0-based t = "
                                                                     f"{fd['t']} in the files)")
        st.error(f"**{unit_title(u.unit)}: differs.** First divergence: {where}.", icon=":material/cancel:")
    s = summary_frame(u.rows)
    s.insert(0, "verdict", np.where(s["passed"], "pass", "FAIL"))
    s["steps"] = s["steps"].astype(str)          # counts and "whole" in one column: text, for Arrow
    st.dataframe(s.drop(columns=["passed"]), hide_index=True, width="stretch",
                 column_config={"max_abs_err": st.column_config.NumberColumn(format="%.2e"),
                                "max_rel_err": st.column_config.NumberColumn(format="%.2e")},
                 key=f"{TABLE_KEY}_{u.unit}_{key[1][:8]}")
    if u.passed:
        return
    if u.values is not None and u.values[0].ndim <= 2:
        label = u.shown or u.first_divergence["quantity"]           # "dW_ih_step [o] at t = 2": what the maps show
        if " at t = " in label:                                      # t 1-based on screen, like the rest of the page
            name, t0 = label.rsplit(" at t = ", 1)
            label = f"{name} at t = {int(t0) + 1}"
        q = label.split()[0].replace("_acc", "").replace("_step", "")
        yours, ref = u.values
        st.caption(f"The maps show **{label}**" + (" (this step's contribution, where the gate's gradient shows)"
                                                    if "_step" in label else "") + ": the reference, yours, and "
                   "where they differ.")
        fig = figures.triplet_figure(ref, yours, label, figures.colour_range(ref, yours), _axes(cell, q),
                                     titles=("reference", "yours", "log10 |reference − yours|"))
        st.plotly_chart(fig, width="stretch", key=f"{FIG_KEY}_{u.unit}_{key[1][:8]}", theme=None,
                        config={"displayModeBar": False})
    st.markdown(f"**Diagnosis.** {u.diagnosis['text']}")
    if u.probes:
        st.markdown("**Probes** (your functions on parts of the problem):\n" +
                    "\n".join(f"- {p.text()}" for p in u.probes) +
                    "\n\n" + "\n".join(f"{e}" for e in u.explanation))
    msgs = list(dict.fromkeys(r["message"] for r in u.rows if r["message"]))
    if msgs:
        st.markdown("**Messages**\n" + "\n".join(f"- {m}" for m in msgs[:12]))
    with st.expander("Every comparison"):
        rows = pd.DataFrame(u.rows)
        st.dataframe(rows, hide_index=True, width="stretch", key=f"{ROWS_KEY}_{u.unit}_{key[1][:8]}")


def _worst(u: UnitResult) -> float:
    v = [r["max_rel_err"] for r in u.rows if np.isfinite(r["max_rel_err"])]
    return max(v) if v else 0.0
