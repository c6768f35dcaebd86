"""The reproduction script: assembled from real code (bptt/repro.py, the engine's plain form, bptt/bugs.py), it runs
for every bug, and its last line and exit code say PASS or FAIL."""
from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt import repro
from bptt.bugs import NAMES, ZOO
from bptt.config import NONLINEARITIES, UPSTREAMS, RNNConfig
from bptt.engine import run_plain
from bptt.export import repro_script
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference

# the worked example, and a config whose sizes all differ (seq_len >= 2, upstream "all", tanh, no truncation: where
# every bug changes what bugs.py says the script reports)
DEFAULTS = RNNConfig()
ALL_DIFFERENT = RNNConfig(input_size=3, hidden_size=7, seq_len=4, batch_size=2, seed=11)


def _values(cfg: RNNConfig) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k != "bug"}


def _run_script(tmp_path, cfg: RNNConfig) -> subprocess.CompletedProcess:
    path = tmp_path / f"repro_{cfg.bug}.py"
    path.write_text(repro_script(cfg, filename=path.name))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)


# ----------------------------------------------------------------------------------------------------------------------
# every bug's script runs, and says PASS / FAIL with the exit code to match

@pytest.mark.parametrize("cfg", [DEFAULTS, ALL_DIFFERENT], ids=["defaults", "all-different"])
@pytest.mark.parametrize("bug", NAMES)
def test_every_bugs_script_runs_and_ends_with_its_verdict(tmp_path, bug: str, cfg: RNNConfig) -> None:
    proc = _run_script(tmp_path, cfg.replace(bug=bug))
    assert proc.stderr == "", proc.stderr
    last = proc.stdout.rstrip("\n").splitlines()[-1]
    if bug == "none":
        assert proc.returncode == 0 and last.startswith("PASS"), proc.stdout
        return
    assert proc.returncode == 1 and last.startswith("FAIL"), proc.stdout
    failed = last.removeprefix("FAIL: ").split(" differ from")[0].split(", ")
    assert failed == list(ZOO[bug].script)          # how bugs.py says the script shows it
    assert f"makes the mistake {bug!r} on purpose" in proc.stdout


def test_the_script_prints_numpy_and_pytorch_side_by_side(tmp_path) -> None:
    proc = _run_script(tmp_path, DEFAULTS)
    grad = torch_rnn_reference(draw_problem(DEFAULTS)).dW_ih
    lines = [line for line in proc.stdout.splitlines() if f"{grad[0, 0]:.6f}" in line]
    assert lines and all(line.count(f"{grad[0, 0]:.6f}") == 2 and " | " in line for line in lines)
    assert "dW_ih (NumPy)" in proc.stdout and "dW_ih (PyTorch)" in proc.stdout


@pytest.mark.parametrize("bug", NAMES)
def test_the_script_is_lint_clean(tmp_path, bug: str) -> None:
    # pyflakes' checks: every name the assembled functions use is defined in the script, and nothing is left unused
    path = tmp_path / "repro.py"
    path.write_text(repro_script(ALL_DIFFERENT.replace(bug=bug)))
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F,E9",
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("bug", NAMES)
def test_the_script_is_the_modules_code(bug: str) -> None:
    cfg = ALL_DIFFERENT.replace(bug=bug)
    text = repro_script(cfg)
    for fn in repro.BODY:
        assert inspect.getsource(fn) in text, fn.__name__
    assert inspect.getsource(ZOO["none"]) in text
    if bug != "none":
        assert inspect.getsource(ZOO[bug]) in text and "BUG (on purpose)" in text
        assert f"STEP = {ZOO[bug].__name__}" in text
    for k, v in _values(cfg).items():
        assert f"    {k!r}: {v!r}," in text


# ----------------------------------------------------------------------------------------------------------------------
# the module's functions, in-process: the same numbers as the package

@st.composite
def configs(draw: st.DrawFn) -> RNNConfig:
    T = draw(st.integers(1, 5))
    return RNNConfig(input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(1, 5)), seq_len=T,
                     batch_size=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**32 - 1)),
                     nonlinearity=draw(st.sampled_from(NONLINEARITIES)), upstream=draw(st.sampled_from(UPSTREAMS)),
                     hh_scale=draw(st.floats(0.05, 10.0)), truncate=draw(st.sampled_from([0, 1, 2, T])),
                     bug=draw(st.sampled_from(NAMES)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_the_scripts_numbers_are_the_packages(cfg: RNNConfig) -> None:
    values = _values(cfg)
    p = repro.draw(values)
    problem = draw_problem(cfg)
    for k in ("x", "h0", "dh_out", "W_ih", "W_hh", "b_ih", "b_hh"):
        np.testing.assert_array_equal(p[k], getattr(problem, k), err_msg=k)
    mine = repro.numpy_bptt(p, values, ZOO[cfg.bug])
    eng = run_plain(problem)                       # the script runs the engine's plain form (fast form: test_engine)
    expected = {"h": eng.h, "dx": eng.dx, "dh0": eng.dh0, **eng.gradients}
    for q in repro.WHOLE:
        np.testing.assert_array_equal(mine[q], expected[q], err_msg=q)
    ref = repro.torch_reference(p, values)
    rnn = torch_rnn_reference(problem)
    for q in repro.WHOLE:
        np.testing.assert_array_equal(ref[q], rnn.gradients[q] if q.startswith(("dW", "db")) else getattr(rnn, q))


@pytest.mark.parametrize("seed", range(4))
def test_saturated_tanh_passes_in_the_script(capsys, seed: int) -> None:
    # hh_scale = 10 saturates tanh: the last-bit differences of numpy's and torch's tanh are within the floor
    cfg = RNNConfig(input_size=2, hidden_size=8, seq_len=6, batch_size=2, seed=seed, hh_scale=10.0)
    assert repro.main(_values(cfg)) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("PASS")


def test_the_floor_does_not_hide_a_bug_at_saturation(capsys) -> None:
    cfg = RNNConfig(input_size=2, hidden_size=3, seq_len=5, batch_size=2, seed=4, hh_scale=10.0)
    for bug in NAMES[1:]:
        assert repro.main(_values(cfg), ZOO[bug]) == 1, bug
        assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("FAIL"), bug
