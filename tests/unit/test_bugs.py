"""The bug zoo (bptt/bugs.py): each bug defined once, caught first where it says, and computing what it says."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from bptt import repro
from bptt.analysis import analyze
from bptt.bugs import NAMES, ZOO, cell_of_bug, first_divergence, step_of
from bptt.cells import BUGS as CELL_BUGS
from bptt.cells import CELLS
from bptt.cells.base import Step
from bptt.compare import agreement, step_quantities
from bptt.config import BUGS, FIELDS, RNNConfig

ROOT = Path(__file__).resolve().parents[2]
REAL_BUGS = [b for b in NAMES if b != "none"]
RNN_BUGS = list(CELL_BUGS["rnn"][1:])
CELL_AND_BUG = [(cell_of_bug(b), b) for b in REAL_BUGS]          # every bug of every cell, with its cell
WHOLE_GRADIENTS = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

# the worked example, and a config whose sizes all differ (a transposed matrix cannot hide), with the upstream
# gradient at every output; T >= 2 so that the carry exists
DEFAULTS = RNNConfig()
ALL_DIFFERENT = RNNConfig(input_size=3, hidden_size=7, seq_len=6, batch_size=2, seed=11)
SMALLEST = RNNConfig(input_size=1, hidden_size=2, seq_len=2, batch_size=1, seed=4)


def hooks(cell: str) -> tuple[str, ...]:
    """The mistake points of a cell's correct step: the hooks it defines, and Step's accumulate."""
    correct = CELLS[cell].zoo["none"]
    return (*(k for k, v in vars(correct).items() if isinstance(v, staticmethod)), "accumulate")


# ----------------------------------------------------------------------------------------------------------------------
# one definition

def test_config_bugs_are_the_zoo() -> None:
    assert BUGS == NAMES and NAMES[0] == "none" and tuple(ZOO) == NAMES[1:]
    assert FIELDS["bug"].choices == NAMES
    assert {"overwrite-instead-of-accumulate", "drop-upstream", "tanh-applied-twice", "dh0-not-returned"} <= set(NAMES)
    # every cell has its zoo, "none" first; a name belongs to one cell only
    assert set(CELL_BUGS) == {"rnn", "lstm", "gru"}
    assert all(names[0] == "none" for names in CELL_BUGS.values())
    assert sorted(REAL_BUGS) == sorted(b for names in CELL_BUGS.values() for b in names[1:])
    assert set(CELL_BUGS["lstm"][1:]) == {"forget-cell-carry", "drop-cell-path", "no-gate-sigmoid-derivative",
                                          "gate-order-ifog", "output-gate-uses-c"}
    assert set(CELL_BUGS["gru"][1:]) == {"reset-before-matmul", "z-swapped", "drop-z-carry", "reset-misses-bias"}
    assert len(CELL_BUGS["rnn"]) == 10                       # the RNN's nine bugs stay RNN bugs


@pytest.mark.parametrize("cell,name", CELL_AND_BUG)
def test_every_bug_is_fully_described(cell: str, name: str) -> None:
    bug = ZOO[name]
    correct = CELLS[cell].zoo["none"]
    assert issubclass(bug, correct) and bug.name == name and step_of(name, cell) is bug
    assert bug.note and bug.note.endswith(".") and "\n" not in bug.note         # one sentence for the banner
    assert bug.equation and "\\" in bug.equation                               # LaTeX
    assert bug.diverges is not None and bug.diverges[0] in step_quantities(CELLS[cell])
    if len(bug.diverges) > 2:                                                   # a gated quantity names its block
        assert CELLS[cell].quantities[bug.diverges[0]].gated and bug.diverges[2] in CELLS[cell].gates
    assert bug.script and set(bug.script) <= set(repro.whole(cell)) - {"h"}
    assert "BUG (on purpose)" in (bug.__doc__ or "")
    # it overrides at least one hook of the correct step, and each override is marked in its source
    overrides = [h for h in hooks(cell) if h in vars(bug)]
    assert overrides, f"{name} changes nothing"
    for h in overrides:
        assert "BUG (on purpose)" in inspect.getsource(getattr(bug, h)), (name, h)


@pytest.mark.parametrize("cell", list(CELLS))
def test_the_correct_step_overrides_nothing(cell: str) -> None:
    correct = step_of("none", cell)
    assert correct is CELLS[cell].zoo["none"] and issubclass(correct, Step) and correct.diverges is None
    assert first_divergence("none", 5, cell) is None
    assert not [h for h in ("accumulate",) if h in vars(correct)]
    with pytest.raises(KeyError, match=f"unknown {cell} bug 'typo'; the {cell} bugs are: {CELL_BUGS[cell][1]}"):
        step_of("typo", cell)
    with pytest.raises(KeyError, match="unknown bug 'typo'; known: none, forget-carry"):
        cell_of_bug("typo")


def _non_test_modules() -> list[Path]:
    files = [*ROOT.glob("bptt/**/*.py"), *ROOT.glob("app_pages/*.py"), *ROOT.glob("scripts/**/*.py"),
             *ROOT.glob("benchmarks/*.py"), ROOT / "streamlit_app.py"]
    return [f for f in files if f.exists()]


@pytest.mark.parametrize("cell,name", CELL_AND_BUG)
def test_a_bug_name_appears_in_at_most_two_non_test_modules(cell: str, name: str) -> None:
    # its cell's module defines it; at most one other module may name it
    pattern = re.compile(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])")
    where = [str(f.relative_to(ROOT)) for f in _non_test_modules() if pattern.search(f.read_text())]
    assert f"bptt/cells/{cell}.py" in where
    assert len(where) <= 2, where


def test_the_app_reads_the_bug_texts_from_the_zoo() -> None:
    # the banner's note and the Backward page's red equation are no longer kept in the app
    for f in ("bptt/app/panels.py", "bptt/app/backward.py"):
        text = (ROOT / f).read_text()
        assert "BUG_NOTES" not in text and "BUG_EQUATIONS" not in text
        assert "step_of(" in text


# ----------------------------------------------------------------------------------------------------------------------
# first divergence: where bugs.py says, at the defaults and at sizes that all differ

@pytest.mark.parametrize("cell,name", CELL_AND_BUG)
@pytest.mark.parametrize("cfg", [DEFAULTS, ALL_DIFFERENT, SMALLEST], ids=["defaults", "all-different", "smallest"])
def test_first_divergence_is_where_the_zoo_says(cell: str, name: str, cfg: RNNConfig) -> None:
    an = analyze(cfg.replace(cell=cell, bug=name))
    expected = first_divergence(name, cfg.seq_len, cell)
    assert expected is not None
    assert an.first_divergence == expected
    assert ("gate" in expected) == (len(ZOO[name].diverges) > 2)
    # every comparison before it passes, and the implementations that are not the engine are untouched
    tab = an.table
    assert not an.all_passed
    assert tab[tab["implementation"] != "numpy engine"]["passed"].all()


@pytest.mark.parametrize("name", RNN_BUGS)
def test_first_divergence_with_upstream_last_and_relu(name: str) -> None:
    cfg = RNNConfig(input_size=2, hidden_size=3, seq_len=5, batch_size=4, seed=5, upstream="last",
                    nonlinearity="relu", bug=name)
    an = analyze(cfg)
    if name in ("drop-upstream", "derivative-of-pre-activation", "tanh-applied-twice"):
        # dh_out is zero before the last step anyway; relu's f' is right at a_t and after a second relu
        assert an.first_divergence is None and an.all_passed
    else:
        assert an.first_divergence == first_divergence(name, cfg.seq_len)


@pytest.mark.parametrize("name,cfg", [
    ("forget-carry", RNNConfig(seq_len=1)),                                         # no carry exists to forget
    ("carry-transposed", RNNConfig(hidden_size=1)),                                 # a 1x1 W_hh is its own transpose
    ("derivative-of-pre-activation", RNNConfig(nonlinearity="relu", seq_len=4)),    # relu' read at a_t is right
    ("overwrite-instead-of-accumulate", RNNConfig(seq_len=1)),                      # one step: = and += agree
    ("drop-upstream", RNNConfig(upstream="last", seq_len=4)),                       # no dh_out before T-1 anyway
    ("drop-upstream", RNNConfig(seq_len=1)),
    ("tanh-applied-twice", RNNConfig(nonlinearity="relu", seq_len=4)),              # relu(relu(a))' = relu'(a)
])
def test_bug_with_nothing_to_break(name: str, cfg: RNNConfig) -> None:
    an = analyze(cfg.replace(bug=name))
    assert an.first_divergence is None
    assert an.all_passed


@pytest.mark.parametrize("cell,name", CELL_AND_BUG)
def test_first_divergence_at_one_step(cell: str, name: str) -> None:
    # at T = 1 there is no carry and no second step: the bugs that show first at T-2 change nothing
    an = analyze(RNNConfig(seq_len=1, cell=cell, bug=name))
    assert an.first_divergence == first_divergence(name, 1, cell)
    assert (first_divergence(name, 1, cell) is None) == (ZOO[name].diverges[1] == -2)


# ----------------------------------------------------------------------------------------------------------------------
# what each bug computes, defined again here independently of bptt/bugs.py

def _defined(name: str, p, e, t: int) -> tuple[str, np.ndarray, np.ndarray]:
    """The engine's value of the bug's first wrong quantity, and that quantity as the issue defines the mistake."""
    T = p.config.seq_len
    if name == "forget-carry":
        return "dh_total", e.dh_total[t], p.dh_out[t]
    if name == "no-activation-derivative":
        return "d_pre", e.d_pre[t], e.dh_total[t]
    if name == "derivative-of-pre-activation":
        return "d_pre", e.d_pre[t], e.dh_total[t] * (1.0 - e.a[t] ** 2)
    if name == "dWhh-uses-h_t":
        return "dW_hh_step", e.dW_hh_step[t], e.d_pre[t].T @ e.h[t]
    if name == "carry-transposed":
        return "dh_prev", e.dh_prev[t], e.d_pre[t] @ p.W_hh.T
    if name == "overwrite-instead-of-accumulate":       # only the last processed step's contribution remains
        return "dW_ih_acc", e.dW_ih_acc[t], e.d_pre[t].T @ p.x[t]
    if name == "drop-upstream":                          # only the carry reaches h_t before the last step
        assert t < T - 1
        return "dh_total", e.dh_total[t], e.dh_prev[t + 1]
    if name == "tanh-applied-twice":
        return "d_pre", e.d_pre[t], e.dh_total[t] * (1.0 - np.tanh(np.tanh(e.a[t])) ** 2)
    if name == "dh0-not-returned":
        return "dh_prev", e.dh_prev[t], np.zeros_like(e.dh_prev[t])
    raise AssertionError(f"no independent definition for {name}")


@pytest.mark.parametrize("name", RNN_BUGS)
@pytest.mark.parametrize("cfg", [DEFAULTS, ALL_DIFFERENT], ids=["defaults", "all-different"])
def test_the_engine_computes_the_mistake_the_issue_defines(name: str, cfg: RNNConfig, close) -> None:
    an = analyze(cfg.replace(bug=name))
    t = an.first_divergence["t"]
    q, got, defined = _defined(name, an.problem, an.engine, t)
    close(got, defined, f"{name}: engine {q}", tol=1e-14)
    ref = getattr(an.unrolled, q)[t]
    assert not agreement(got, ref).passed


def _sig_prime(s: np.ndarray) -> np.ndarray:
    return s * (1.0 - s)


def _defined_gated(name: str, an, t: int) -> tuple[str, np.ndarray, np.ndarray]:
    """The engine's value of an LSTM or GRU bug's first wrong quantity at step t, and that quantity as issue 14
    defines the mistake, from the forward values and the reference's (correct) gradients before it in a step."""
    p, e, u = an.problem, an.engine, an.unrolled
    H = p.config.hidden_size
    dh = u.dh_total[t]                                                   # ∂L/∂h_t: nothing before it is wrong
    h_prev = p.h0 if t == 0 else e.h[t - 1]
    if an.config.cell == "lstm":
        i, f, g, o, c = (getattr(e, k)[t] for k in ("i", "f", "g", "o", "c"))
        c_prev = p.c0 if t == 0 else e.c[t - 1]
        dc = u.dc_total[t]
        di, df, dg = dc * g * _sig_prime(i), dc * c_prev * _sig_prime(f), dc * i * (1.0 - g ** 2)
        do = dh * np.tanh(c) * _sig_prime(o)
        if name == "forget-cell-carry":                  # dc_t is only the path through h_t
            return "dc_total", e.dc_total[t], dh * o * (1.0 - np.tanh(c) ** 2)
        if name == "drop-cell-path":                     # dc_t is only the carry (zero at T-1)
            return "dc_total", e.dc_total[t], u.dc_next[t]
        if name == "no-gate-sigmoid-derivative":         # σ' left out for i, f and o
            return "d_gates", e.d_gates[t], np.concatenate([dc * g, dc * c_prev, dg, dh * np.tanh(c)], axis=1)
        if name == "gate-order-ifog":                    # stacked i, f, o, g against weights i, f, g, o
            return "d_gates", e.d_gates[t], np.concatenate([di, df, do, dg], axis=1)
        if name == "output-gate-uses-c":                 # do = dh ⊙ c_t where tanh(c_t) belongs
            return "d_gates", e.d_gates[t], np.concatenate([di, df, dg, dh * c * _sig_prime(o)], axis=1)
    else:
        r, z, n, hn = (getattr(e, k)[t] for k in ("r", "z", "n", "hn"))
        W_hn, b_hn = p.W_hh[2 * H:], p.b_hh[2 * H:]
        d_n = dh * (1.0 - z) * (1.0 - n ** 2)
        d_z = dh * (h_prev - n) * _sig_prime(z)
        if name == "reset-before-matmul":                # the paper's n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)
            d_r = (d_n @ W_hn) * h_prev * _sig_prime(r)
            return "d_gates", e.d_gates[t], np.concatenate([d_r, d_z, d_n], axis=1)
        if name == "z-swapped":                          # h = z ⊙ n + (1 − z) ⊙ h_{t-1}
            d_n_swapped = dh * z * (1.0 - n ** 2)
            d_r = d_n_swapped * hn * _sig_prime(r)
            return "d_gates", e.d_gates[t], np.concatenate([d_r, dh * (n - h_prev) * _sig_prime(z),
                                                            d_n_swapped], axis=1)
        if name == "drop-z-carry":                       # dh_prev misses dh ⊙ z
            d_r = d_n * hn * _sig_prime(r)
            return "dh_prev", e.dh_prev[t], np.concatenate([d_r, d_z, d_n * r], axis=1) @ p.W_hh
        if name == "reset-misses-bias":                  # d_r with W_hn h_{t-1}, no b_hn
            d_r = d_n * (hn - b_hn) * _sig_prime(r)
            return "d_gates", e.d_gates[t], np.concatenate([d_r, d_z, d_n], axis=1)
    raise AssertionError(f"no independent definition for {name}")


@pytest.mark.parametrize("cell,name", [cb for cb in CELL_AND_BUG if cb[0] != "rnn"])
@pytest.mark.parametrize("cfg", [DEFAULTS, ALL_DIFFERENT], ids=["defaults", "all-different"])
def test_the_gated_engine_computes_the_mistake_the_issue_defines(cell: str, name: str, cfg: RNNConfig,
                                                                 close) -> None:
    an = analyze(cfg.replace(cell=cell, bug=name))
    fd = an.first_divergence
    t = fd["t"]
    q, got, defined = _defined_gated(name, an, t)
    assert q == fd["quantity"]
    close(got, defined, f"{name}: engine {q}[{t}]", tol=1e-14)
    ref = getattr(an.unrolled, q)[t]
    assert not agreement(got, ref).passed
    if "gate" in fd:                                     # the named gate block is wrong, the blocks before it right
        H = cfg.hidden_size
        k = CELLS[cell].gates.index(fd["gate"])
        assert not agreement(got[:, k * H:(k + 1) * H], ref[:, k * H:(k + 1) * H]).passed
        assert agreement(got[:, :k * H], ref[:, :k * H]).passed


@pytest.mark.parametrize("cfg", [DEFAULTS, ALL_DIFFERENT], ids=["defaults", "all-different"])
def test_the_new_bugs_leave_the_rest_alone(cfg: RNNConfig, close) -> None:
    good = analyze(cfg).engine
    over = analyze(cfg.replace(bug="overwrite-instead-of-accumulate")).engine
    for q in ("dx", "dh0", "d_pre", "dW_ih_step", "dW_hh_step"):            # dx and dh0 are untouched
        np.testing.assert_array_equal(getattr(over, q), getattr(good, q))
    for q in ("dW_ih", "dW_hh", "db_ih", "db_hh"):                          # only step t = 0's contribution remains
        close(over.gradients[q], getattr(good, q + "_step")[0], q, tol=0.0)
    dh0 = analyze(cfg.replace(bug="dh0-not-returned")).engine
    assert np.all(dh0.dh0 == 0.0)
    for q in ("dx", "dW_ih_acc", "dW_hh_acc", "db_ih_acc", "dh_prev"):      # everything else as without the bug
        np.testing.assert_array_equal(getattr(dh0, q)[1:] if q == "dh_prev" else getattr(dh0, q),
                                      getattr(good, q)[1:] if q == "dh_prev" else getattr(good, q))
    drop = analyze(cfg.replace(bug="drop-upstream")).engine
    T = cfg.seq_len
    np.testing.assert_array_equal(drop.dh_total[T - 1], good.dh_total[T - 1])


def test_the_cells_import_nothing_of_the_package_outside_bptt_cells() -> None:
    # each cell is its own derivation: bptt/cells/*.py import only each other (relative, one level), numpy and torch
    for f in sorted((ROOT / "bptt" / "cells").glob("*.py")):
        text = f.read_text()
        assert not re.search(r"^\s*(from \.\.|from bptt|import bptt)", text, re.M), f.name
