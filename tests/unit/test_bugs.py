"""The bug zoo (bptt/bugs.py): each bug defined once, caught first where it says, and computing what it says."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from bptt import bugs
from bptt.analysis import analyze
from bptt.bugs import NAMES, ZOO, Step, first_divergence, step_of
from bptt.compare import agreement
from bptt.config import BUGS, FIELDS, RNNConfig

ROOT = Path(__file__).resolve().parents[2]
REAL_BUGS = [b for b in NAMES if b != "none"]
HOOKS = ("total_gradient", "fprime", "carry", "dW_hh_input", "accumulate")
WHOLE_GRADIENTS = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

# the worked example, and a config whose sizes all differ (a transposed matrix cannot hide), with the upstream
# gradient at every output; T >= 2 so that the carry exists
DEFAULTS = RNNConfig()
ALL_DIFFERENT = RNNConfig(input_size=3, hidden_size=7, seq_len=6, batch_size=2, seed=11)
SMALLEST = RNNConfig(input_size=1, hidden_size=2, seq_len=2, batch_size=1, seed=4)


# ----------------------------------------------------------------------------------------------------------------------
# one definition

def test_config_bugs_are_the_zoo() -> None:
    assert BUGS == NAMES == tuple(ZOO) and NAMES[0] == "none"
    assert FIELDS["bug"].choices == NAMES
    assert {"overwrite-instead-of-accumulate", "drop-upstream", "tanh-applied-twice", "dh0-not-returned"} <= set(NAMES)


@pytest.mark.parametrize("name", REAL_BUGS)
def test_every_bug_is_fully_described(name: str) -> None:
    bug = ZOO[name]
    assert issubclass(bug, Step) and bug.name == name
    assert bug.note and bug.note.endswith(".") and "\n" not in bug.note         # one sentence for the banner
    assert bug.equation and "\\" in bug.equation                                # LaTeX
    assert bug.diverges is not None and bug.diverges[0] in ("dh_total", "d_pre", "dh_prev", "dW_ih_acc", "dW_hh_acc")
    assert bug.script and set(bug.script) <= set(WHOLE_GRADIENTS)
    assert "BUG (on purpose)" in (bug.__doc__ or "")
    # it overrides at least one hook of the correct step, and each override is marked in its source
    overrides = [h for h in HOOKS if h in vars(bug)]
    assert overrides, f"{name} changes nothing"
    for h in overrides:
        assert "BUG (on purpose)" in inspect.getsource(getattr(bug, h)), (name, h)


def test_the_correct_step_overrides_nothing() -> None:
    assert step_of("none") is Step and Step.diverges is None and first_divergence("none", 5) is None
    with pytest.raises(KeyError, match="unknown bug 'typo'; known: none, forget-carry"):
        step_of("typo")


def _non_test_modules() -> list[Path]:
    files = [*ROOT.glob("bptt/**/*.py"), *ROOT.glob("app_pages/*.py"), *ROOT.glob("scripts/**/*.py"),
             *ROOT.glob("benchmarks/*.py"), ROOT / "streamlit_app.py"]
    return [f for f in files if f.exists()]


@pytest.mark.parametrize("name", REAL_BUGS)
def test_a_bug_name_appears_in_at_most_two_non_test_modules(name: str) -> None:
    pattern = re.compile(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])")
    where = [str(f.relative_to(ROOT)) for f in _non_test_modules() if pattern.search(f.read_text())]
    assert "bptt/bugs.py" in where
    assert len(where) <= 2, where


def test_the_app_reads_the_bug_texts_from_the_zoo() -> None:
    # the banner's note and the Backward page's red equation are no longer kept in the app
    for f in ("bptt/app/panels.py", "bptt/app/backward.py"):
        text = (ROOT / f).read_text()
        assert "BUG_NOTES" not in text and "BUG_EQUATIONS" not in text
        assert "step_of(" in text


# ----------------------------------------------------------------------------------------------------------------------
# first divergence: where bugs.py says, at the defaults and at sizes that all differ

@pytest.mark.parametrize("name", REAL_BUGS)
@pytest.mark.parametrize("cfg", [DEFAULTS, ALL_DIFFERENT, SMALLEST], ids=["defaults", "all-different", "smallest"])
def test_first_divergence_is_where_the_zoo_says(name: str, cfg: RNNConfig) -> None:
    an = analyze(cfg.replace(bug=name))
    expected = first_divergence(name, cfg.seq_len)
    assert expected is not None
    assert an.first_divergence == expected
    # every comparison before it passes, and the implementations that are not the engine are untouched
    tab = an.table
    assert not an.all_passed
    assert tab[tab["implementation"] != "numpy engine"]["passed"].all()


@pytest.mark.parametrize("name", REAL_BUGS)
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


@pytest.mark.parametrize("name", REAL_BUGS)
def test_first_divergence_at_one_step(name: str) -> None:
    # at T = 1 there is no carry and no second step: the bugs that show first at T-2 change nothing
    an = analyze(RNNConfig(seq_len=1, bug=name))
    assert an.first_divergence == first_divergence(name, 1)
    assert (first_divergence(name, 1) is None) == (ZOO[name].diverges[1] == -2)


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


@pytest.mark.parametrize("name", REAL_BUGS)
@pytest.mark.parametrize("cfg", [DEFAULTS, ALL_DIFFERENT], ids=["defaults", "all-different"])
def test_the_engine_computes_the_mistake_the_issue_defines(name: str, cfg: RNNConfig, close) -> None:
    an = analyze(cfg.replace(bug=name))
    t = an.first_divergence["t"]
    q, got, defined = _defined(name, an.problem, an.engine, t)
    close(got, defined, f"{name}: engine {q}", tol=1e-14)
    ref = getattr(an.unrolled, q)[t]
    assert not agreement(got, ref).passed


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


def test_the_module_imports_nothing_of_the_package() -> None:
    # config imports bugs (config.BUGS), so bugs must not import config, nor anything else of bptt
    text = Path(bugs.__file__).read_text()
    assert not re.search(r"^\s*(from \.|from bptt|import bptt)", text, re.M)
