"""The reproduction script: assembled from real code (bptt/repro.py, the cell's plain form and its bug zoo in
bptt/cells/), it runs for every cell and every bug, and its last line and exit code say PASS or FAIL."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt import repro
from bptt.bugs import NAMES, ZOO, cell_of_bug
from bptt.cells import BUGS as CELL_BUGS
from bptt.config import NONLINEARITIES, UPSTREAMS, RNNConfig
from bptt.engine import run_plain
from bptt.export import repro_script
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference

# the worked example, and a config whose sizes all differ (seq_len >= 2, upstream "all", tanh, no truncation: where
# every bug changes what bugs.py says the script reports)
DEFAULTS = RNNConfig()
ALL_DIFFERENT = RNNConfig(input_size=3, hidden_size=7, seq_len=4, batch_size=2, seed=11)
RNN_BUGS = CELL_BUGS["rnn"]
# every bug of every cell with its cell; "none" once per cell
CELL_AND_BUG = [("rnn", "none"), ("lstm", "none"), ("gru", "none"),
                *((cell_of_bug(b), b) for b in NAMES if b != "none")]


def _values(cfg: RNNConfig) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k != "bug"}


def _run_script(tmp_path: Path, cfg: RNNConfig) -> subprocess.CompletedProcess:
    path = tmp_path / f"repro_{cfg.cell}_{cfg.bug}_{cfg.seq_len}.py"
    path.write_text(repro_script(cfg, filename=path.name))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)


# ----------------------------------------------------------------------------------------------------------------------
# every bug's script runs, and says PASS / FAIL with the exit code to match
#
# The RNN's at the defaults and at all-different sizes, the gated cells' at the all-different sizes. A fresh Python
# spends ~2 s importing torch, so the scripts run as __main__ one after another in two Python processes (each
# script seeds numpy and torch itself and defines everything it uses); test_standalone_scripts runs one script of
# each cell in a process of its own.

SCRIPT_CONFIGS = [*(c.replace(bug=b) for b in RNN_BUGS for c in (DEFAULTS, ALL_DIFFERENT)),
                  *(ALL_DIFFERENT.replace(cell=cell, bug=b) for cell in ("lstm", "gru") for b in CELL_BUGS[cell])]

# runs each script given on the command line as __main__, and prints [{stdout, stderr, returncode}] as JSON
_RUNNER = """
import contextlib, io, json, runpy, sys
out = []
for path in sys.argv[1:]:
    so, se, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out.append({"stdout": so.getvalue(), "stderr": se.getvalue(), "returncode": code})
print(json.dumps(out))
"""


def _key(cfg: RNNConfig) -> str:
    sizes = "defaults" if cfg.seq_len == DEFAULTS.seq_len and cfg.seed == DEFAULTS.seed else "all-different"
    return f"{cfg.cell}-{cfg.bug}-{sizes}"


def _write_scripts(tmp: Path, cfgs: list[RNNConfig]) -> list[str]:
    """The scripts' paths. Written in the calling thread: repro_script reads source with inspect, which parses with
    ast, and CPython 3.11's ast is not safe to use from two threads at once ("AST constructor recursion depth
    mismatch")."""
    paths = []
    for cfg in cfgs:
        path = tmp / f"repro_{_key(cfg)}.py"
        path.write_text(repro_script(cfg, filename=path.name))
        paths.append(str(path))
    return paths


def _run_scripts(tmp: Path, paths: list[str]) -> list[SimpleNamespace]:
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *paths], capture_output=True, text=True, timeout=600,
                          cwd=tmp)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [SimpleNamespace(**r) for r in json.loads(proc.stdout)]


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory) -> dict[str, SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("scripts")
    halves = [SCRIPT_CONFIGS[0::2], SCRIPT_CONFIGS[1::2]]
    scripts = [_write_scripts(tmp, half) for half in halves]                   # here, one thread: see _write_scripts
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda paths: _run_scripts(tmp, paths), scripts))
    return {_key(c): r for half, rs in zip(halves, runs) for c, r in zip(half, rs)}


@pytest.mark.parametrize("cfg", [ALL_DIFFERENT.replace(cell="lstm", bug="gate-order-ifog"),
                                 ALL_DIFFERENT.replace(cell="gru")], ids=_key)
def test_standalone_scripts(tmp_path, script_runs, cfg: RNNConfig) -> None:
    # a script in a fresh process says exactly what it says among the others
    proc = _run_script(tmp_path, cfg)
    assert proc.stderr == ""
    assert (proc.returncode, proc.stdout) == (script_runs[_key(cfg)].returncode, script_runs[_key(cfg)].stdout)


@pytest.mark.parametrize("cfg", SCRIPT_CONFIGS, ids=_key)
def test_every_bugs_script_runs_and_ends_with_its_verdict(script_runs, cfg: RNNConfig) -> None:
    proc = script_runs[_key(cfg)]
    bug = cfg.bug
    assert proc.stderr == "", proc.stderr
    last = proc.stdout.rstrip("\n").splitlines()[-1]
    if bug == "none":
        assert proc.returncode == 0 and last.startswith("PASS"), proc.stdout
        return
    assert proc.returncode == 1 and last.startswith("FAIL"), proc.stdout
    failed = last.removeprefix("FAIL: ").split(" differ from")[0].split(", ")
    assert failed == list(ZOO[bug].script)          # how the zoo says the script shows it
    assert f"makes the mistake {bug!r} on purpose" in proc.stdout
    module = {"rnn": "torch.nn.RNN", "lstm": "torch.nn.LSTM", "gru": "torch.nn.GRU"}[cfg.cell]
    assert module in last


def test_the_script_prints_numpy_and_pytorch_side_by_side(tmp_path) -> None:
    proc = _run_script(tmp_path, DEFAULTS)
    grad = torch_rnn_reference(draw_problem(DEFAULTS)).dW_ih
    lines = [line for line in proc.stdout.splitlines() if f"{grad[0, 0]:.6f}" in line]
    assert lines and all(line.count(f"{grad[0, 0]:.6f}") == 2 and " | " in line for line in lines)
    assert "dW_ih (NumPy)" in proc.stdout and "dW_ih (PyTorch)" in proc.stdout


@pytest.mark.parametrize("cell,bug", CELL_AND_BUG)
def test_the_script_is_lint_clean(tmp_path, cell: str, bug: str) -> None:
    # pyflakes' checks: every name the assembled functions use is defined in the script, and nothing is left unused
    path = tmp_path / "repro.py"
    path.write_text(repro_script(ALL_DIFFERENT.replace(cell=cell, bug=bug)))
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "F,E9",
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("cell,bug", CELL_AND_BUG)
def test_the_script_is_the_modules_code(cell: str, bug: str) -> None:
    cfg = ALL_DIFFERENT.replace(cell=cell, bug=bug)
    text = repro_script(cfg)
    for fn in repro.body(cell):
        assert inspect.getsource(fn) in text, fn.__name__
    assert inspect.getsource(repro.STEPS[cell]) in text
    assert f"sys.exit(main(CONFIG, STEP, {repro.NUMPY_SIDE[cell]}))" in text
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
                     bug=draw(st.sampled_from(RNN_BUGS)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_the_scripts_numbers_are_the_packages(cfg: RNNConfig) -> None:
    values = _values(cfg)
    p = repro.draw(values)
    problem = draw_problem(cfg)
    for k in ("x", "h0", "dh_out", "W_ih", "W_hh", "b_ih", "b_hh"):
        np.testing.assert_array_equal(p[k], getattr(problem, k), err_msg=k)
    step = repro.STEPS["rnn"] if cfg.bug == "none" else ZOO[cfg.bug]
    mine = repro.numpy_rnn(p, values, step)
    eng = run_plain(problem)                       # the script runs the engine's plain form (fast form: test_engine)
    # the script's gradients are the running sums at t = 0, in the engine's order: the Trace's full gradients
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
    assert repro.main(_values(cfg), repro.STEPS["rnn"], repro.numpy_rnn) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("PASS")


def test_the_floor_does_not_hide_a_bug_at_saturation(capsys) -> None:
    cfg = RNNConfig(input_size=2, hidden_size=3, seq_len=5, batch_size=2, seed=4, hh_scale=10.0)
    for bug in RNN_BUGS[1:]:
        assert repro.main(_values(cfg), ZOO[bug], repro.numpy_rnn) == 1, bug
        assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("FAIL"), bug
