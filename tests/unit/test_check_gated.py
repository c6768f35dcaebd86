"""The checker's LSTM and GRU shapes and their conventions (README, "How the check works"): which cell, c0 = 0 for the
CS231n and Coursera whole-sequence LSTM, the torch layout's step backward, per-gate localisation from a step's weight
contributions, torch's names for the courses' results but the student's own names in shape messages, step functions
first, and the GRU paper's form told as such."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from bptt.check import checker
from bptt.check.checker import CheckReport, check_file
from bptt.check.report import report_text
from bptt.config import RNNConfig
from tests.unit.clitools import assert_usage_error, run_cli

FILES = Path(__file__).parent / "check_files" / "gated"
SMALL = RNNConfig(input_size=3, hidden_size=5, seq_len=4, batch_size=2)


@cache
def report(name: str, cell: str | None = None) -> CheckReport:
    return check_file(FILES / name, [SMALL], cell=cell)


# ----------------------------------------------------------------------------------------------------------------------
# which cell

@pytest.mark.parametrize("name, cell, units", [
    ("lstm_torch_step.py", "lstm", ["lstm-torch-step"]),
    ("lstm_torch_sequence.py", "lstm", ["lstm-torch-sequence"]),
    ("lstm_cs231n.py", "lstm", ["lstm-cs231n-step", "lstm-cs231n-sequence"]),
    ("lstm_coursera.py", "lstm", ["lstm-coursera-step", "lstm-coursera-sequence"]),
    ("gru_torch_step.py", "gru", ["gru-torch-step"]),
    ("gru_layer.py", "gru", ["gru-torch-step", "gru-torch-sequence"]),
])
def test_the_cell_comes_from_the_files_names(name, cell, units):
    assert checker.cells_named(FILES / name) == [cell]
    r = report(name)
    assert r.cell == cell and r.units == units and r.passed
    assert all(c.config.cell == cell for c in r.configs)
    rows = r.configs[0].units[0].rows
    assert {row["gate"] for row in rows if row["quantity"] == "dW_ih"} == set("ifgo" if cell == "lstm" else "rzn")


def test_cell_alone_keeps_the_default_configs_and_a_contradiction_is_a_usage_error(capsys):
    code, out, _ = run_cli(capsys, "check", str(FILES / "gru_torch_step.py"), "--cell", "gru", "--json")
    obj = json.loads(out)
    assert code == 0 and obj["cell"] == "gru" and [c["config"]["cell"] for c in obj["configs"]] == ["gru", "gru"]
    assert [c["config"]["seq_len"] for c in obj["configs"]] == [c.seq_len for c in checker.default_configs()]
    assert_usage_error(*run_cli(capsys, "check", str(FILES / "gru_torch_step.py"), "--cell", "lstm"), "--cell lstm")
    code, out, err = run_cli(capsys, "check", str(FILES / "lstm_cs231n.py"), "--cell", "rnn")
    assert code == 2 and "lstm_* functions" in err and "--cell lstm" in err


def test_a_gated_file_without_a_known_shape_lists_the_cells_shapes(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def lstm_helper(x):\n    return x\n")
    r = check_file(path, [SMALL])
    assert r.exit_code == 2 and "lstm_step_forward + lstm_step_backward" in r.usage


# ----------------------------------------------------------------------------------------------------------------------
# c0: drawn for step functions and the torch layout, zero for CS231n's and Coursera's whole sequence

def test_cs231n_and_coursera_sequences_are_checked_from_c0_zero_and_the_torch_layout_from_the_drawn_c0(tmp_path):
    p = checker.draw_problem(SMALL.replace(cell="lstm"))
    assert np.any(p.c0)                                   # a c0 = 0 reference is a different problem
    for name in ("lstm_cs231n.py", "lstm_coursera.py"):
        step, seq = report(name).configs[0].units
        assert step.passed and seq.passed
    src = (FILES / "lstm_torch_sequence.py").read_text().replace("hp, cp = h0, c0", "hp, cp = h0, np.zeros_like(c0)")
    path = tmp_path / "starts_from_zero.py"
    path.write_text(src)
    u = check_file(path, [SMALL]).configs[0].units[0]
    assert u.first_divergence == {"quantity": "h", "t": 0}


# ----------------------------------------------------------------------------------------------------------------------
# per gate, from what a step returns

def test_the_headline_names_the_gate_in_text_and_json(capsys):
    code, out, _ = run_cli(capsys, "check", str(FILES / "lstm_step_c.py"), "--seq-len", "4")
    assert code == 1 and "MISMATCH: d_gates [o] at t = 3 (0-based)" in out and "output-gate-uses-c" in out
    code, out, _ = run_cli(capsys, "check", str(FILES / "lstm_step_c.py"), "--seq-len", "4", "--json")
    obj = json.loads(out)
    assert obj["first_divergence"] == {"quantity": "d_gates", "t": 3, "gate": "o"} and obj["api"] == "a"
    assert any(row["gate"] == "o" and row["quantity"] == "d_gates" for row in obj["configs"][0]["rows"])


def test_a_wrong_weight_formula_is_not_blamed_on_the_gates():
    """dW_hh from h_t: this step's dW_ih and db_ih agree, so d_gates is right and dW_hh [i] is the first to differ."""
    u = report("lstm_step_e.py").configs[0].units[0]
    assert all(r["passed"] for r in u.rows if r["quantity"] == "d_gates")
    assert u.first_divergence == {"quantity": "dW_hh_acc", "t": 3, "gate": "i"}


def test_the_grus_hidden_side_of_n_shows_in_dW_hh_and_db_hh():
    u = report("gru_step_f.py").configs[0].units[0]
    assert u.first_divergence == {"quantity": "d_hn", "t": 3}
    assert "d_hn = d_n ⊙ r_t" in u.diagnosis["text"]
    u = report("gru_step_e.py").configs[0].units[0]          # db_hh = db_ih: dW_hh's n block agrees, db_hh's not
    assert u.first_divergence == {"quantity": "db_hh_acc", "t": 3, "gate": "n"}


def test_the_zoo_is_run_not_guessed(monkeypatch):
    monkeypatch.setitem(checker.CELL_BUGS, "lstm", ("none",))
    u = check_file(FILES / "lstm_step_b.py", [SMALL]).configs[0].units[0]
    assert u.first_divergence == {"quantity": "d_gates", "t": 3, "gate": "i"}
    assert u.diagnosis["bug"] is None and "i_t (1 − i_t)" in u.diagnosis["text"]


# ----------------------------------------------------------------------------------------------------------------------
# names and order

def test_the_courses_names_stay_in_shape_messages():
    u = report("lstm_coursera_c.py").configs[0].units[0]
    msg = next(r["message"] for r in u.rows if r["message"])
    assert msg.startswith("dbf at t = 3 has shape (1, 2); expected (5, 1) = (n_a, 1), like parameters['bf']")
    u = report("lstm_cs231n_d.py").configs[0].units[0]
    assert "db at t = 3 has shape (2,); expected (20,) = (4H), like b" in [r["message"] for r in u.rows]
    assert u.diagnosis["hint"] == "wrong-axis" and "da.sum(axis=0)" in u.diagnosis["text"]


def test_cs231n_results_are_reported_in_torchs_names_and_gate_order():
    """CS231n's da stacked i, f, g, o (torch's order, against its own i, f, o, g forward) is torch's gate-order-ifog,
    and its single db is compared with both of torch's biases, block by block."""
    r = report("lstm_cs231n_b.py")
    step, seq = r.configs[0].units
    assert step.diagnosis["bug"] == "gate-order-ifog" and step.first_divergence["gate"] == "g"
    assert {row["quantity"] for row in seq.rows} >= {"dW_ih", "dW_hh", "db_ih", "db_hh"}


def test_step_functions_lead_the_report():
    r = report("lstm_cs231n_c.py")
    step, seq = r.configs[0].units
    assert step.first_divergence == {"quantity": "dc_prev", "t": 3}
    assert seq.first_divergence["t"] == 2                   # the whole sequence shows it one step later, in dx
    text = report_text(r)
    assert text.count("MISMATCH") == 1 and "MISMATCH: dc_prev at t = 3 (0-based), in your (c) step" in text


# ----------------------------------------------------------------------------------------------------------------------
# the GRU paper's form

def test_the_grus_paper_form_is_told_as_such():
    u = report("gru_seq_a.py").configs[0].units[0]           # forward and backward written as the paper's
    assert u.diagnosis["hint"] == "gru-paper-form"
    assert "paper's GRU" in u.diagnosis["text"] and "PyTorch puts r after the product" in u.diagnosis["text"]
    u = report("gru_step_a.py").configs[0].units[0]          # the paper's backward against PyTorch's forward
    assert u.diagnosis["bug"] == "reset-before-matmul" and "PyTorch puts r after the product" in u.diagnosis["text"]


def test_gated_state_kept_between_calls_is_reported():
    u = report("lstm_seq_g.py").configs[0].units[0]
    assert all(r["passed"] for r in u.rows) and u.state is not None and u.diagnosis["hint"] == "state"


@pytest.mark.parametrize("name, hint, words", [
    ("lstm_step_i.py", "gate-order-forward", "as the gates i, f, o, g; torch.nn.LSTM stacks them i, f, g, o"),
    ("gru_step_i.py", "gate-order-forward", "as the gates z, r, n; torch.nn.GRU stacks them r, z, n"),
    ("lstm_seq_h.py", "c0-ignored", "starts from c0 = 0"),
])
def test_a_known_other_forward_is_named(name, hint, words):
    u = report(name).configs[0].units[0]
    assert u.first_divergence["t"] == 0 and u.diagnosis["hint"] == hint and words in u.diagnosis["text"]


def test_lstm_step_forward_of_cs231n_and_of_the_torch_layout_are_told_apart_by_their_parameters():
    import types

    from bptt.check import gated

    def module(src: str):
        mod = types.ModuleType("student")
        exec(src + "\ndef lstm_step_backward(a, b, c):\n    pass\n", mod.__dict__)
        return mod

    cases = {"def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b): pass": "lstm-cs231n-step",
             "def lstm_step_forward(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh): pass": "lstm-torch-step",
             "def lstm_step_forward(x, h, c, A, U, b): pass": "lstm-cs231n-step",          # by the count: 6
             "def lstm_step_forward(x, h, c, A, U, b1, b2): pass": "lstm-torch-step"}      # 7
    for src, unit in cases.items():
        assert gated.recognise(module(src), "lstm").units == (unit,), src
    r = gated.recognise(module("def lstm_step_forward(x, h): pass"), "lstm")
    assert r.units == () and "expected (x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh)" in r.notes[0]
