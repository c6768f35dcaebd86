"""The checker on student files written for the tests (tests/unit/check_files/): correct files in each shape pass;
planted mistakes are found at the right quantity and step, and the zoo mistakes are named by running the zoo."""
from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from bptt.cells import BUGS as CELL_BUGS
from bptt.check import checker
from bptt.check.checker import CheckReport, check_file
from bptt.config import RNNConfig
from tests.unit.clitools import assert_usage_error, run_cli

FILES = Path(__file__).parent / "check_files"
BUGS = CELL_BUGS["rnn"]          # the vanilla RNN's bug zoo


@cache
def report(name: str) -> CheckReport:
    """The checker's report on one file at the default configs (each file is run once per session)."""
    return check_file(FILES / name)


# ----------------------------------------------------------------------------------------------------------------------
# correct files

@pytest.mark.parametrize("name, api, units", [
    ("torch_step.py", "a", ["torch-step"]),
    ("torch_sequence.py", "b", ["torch-sequence"]),
    ("cs231n.py", "c", ["cs231n-step", "cs231n-sequence"]),
    ("worked_exercise.py", "d", ["class"]),
    ("exercise_class_batch_bias.py", "d", ["class"]),
    ("coursera_rnn.py", "e", ["coursera-step", "coursera-sequence"]),
])
def test_correct_files_pass(name, api, units):
    r = report(name)
    assert r.api == api and r.units == units
    assert r.exit_code == 0 and r.passed
    assert [c.config for c in r.configs] == checker.default_configs()
    for c in r.configs:
        for u in c.units:
            assert u.first_divergence is None and u.diagnosis["bug"] is None
            # every quantity the shape yields was compared, each step and the whole results
            T = c.config.seq_len
            qs = {(row["quantity"], row["t"]) for row in u.rows}
            assert {("h", t) for t in range(T)} <= qs and {("dx", t) for t in range(T)} <= qs
            assert {(q, None) for q in ("dx", "dW_ih", "dW_hh", "db_ih", "db_hh")} <= qs
            if u.unit != "class" or any(q == "dh0" for q, _ in qs):
                assert ("dh0", None) in qs
            assert all(row["max_rel_err"] <= 1e-10 for row in u.rows)


def test_default_configs_have_all_sizes_different():
    worked, other = checker.default_configs()
    assert worked == RNNConfig()
    sizes = (other.input_size, other.hidden_size, other.seq_len, other.batch_size)
    assert len(set(sizes)) == 4


def test_worked_exercise_class_keeps_its_carry_and_compares_it_per_step():
    u = report("worked_exercise.py").configs[0].units[0]
    T = report("worked_exercise.py").configs[0].config.seq_len
    assert {("dh_prev", t) for t in range(T)} <= {(r["quantity"], r["t"]) for r in u.rows}


# ----------------------------------------------------------------------------------------------------------------------
# planted mistakes: quantity, t (0-based, per config) and the zoo bug

ZOO_CASES = [
    # file, zoo bug, first divergence quantity, its t as a function of T
    ("seq_forget_carry.py", "forget-carry", "dx", lambda T: T - 2),
    ("step_no_activation_derivative.py", "no-activation-derivative", "dx", lambda T: T - 1),
    ("cs231n_derivative_of_pre.py", "derivative-of-pre-activation", "dx", lambda T: T - 1),
    ("class_dwhh_uses_ht.py", "dWhh-uses-h_t", "dW_hh_acc", lambda T: T - 1),
    ("step_carry_transposed.py", "carry-transposed", "dh_prev", lambda T: T - 1),
    ("class_overwrite.py", "overwrite-instead-of-accumulate", "dW_ih_acc", lambda T: T - 2),
    ("seq_drop_upstream.py", "drop-upstream", "dx", lambda T: T - 2),
    ("cs231n_tanh_twice.py", "tanh-applied-twice", "dx", lambda T: T - 1),
    ("seq_dh0_not_returned.py", "dh0-not-returned", "dh0", lambda T: 0),
]


@pytest.mark.parametrize("name, bug, quantity, t_of", ZOO_CASES)
def test_zoo_mistakes_are_located_and_named(name, bug, quantity, t_of):
    r = report(name)
    assert r.exit_code == 1 and not r.passed
    for c in r.configs:
        for u in c.units:
            T = c.config.seq_len
            assert u.first_divergence == {"quantity": quantity, "t": t_of(T)}, (c.config, u.unit)
            assert u.diagnosis["bug"] == bug and bug in u.diagnosis["text"]
            assert u.zoo[0] == bug


def test_every_zoo_bug_is_planted_in_a_file():
    planted = {case[1] for case in ZOO_CASES}
    assert set(BUGS) - {"none"} <= planted
    for name, bug, *_ in ZOO_CASES:
        assert f"zoo: {bug}" in (FILES / name).read_text()


def test_zoo_match_comes_from_running_the_zoo(monkeypatch):
    """With the zoo emptied, the same mistake is still located but no bug is named (no guessing from names)."""
    monkeypatch.setitem(checker.CELL_BUGS, "rnn", ("none",))
    r = check_file(FILES / "seq_forget_carry.py", [RNNConfig()])
    u = r.configs[0].units[0]
    assert u.first_divergence == {"quantity": "dx", "t": 1}
    assert u.diagnosis["bug"] is None and u.zoo == []
    assert "carry" in u.diagnosis["text"]


@pytest.mark.parametrize("name, quantity, t_of, words", [
    ("step_transposed_dW.py", "dW_ih_acc", lambda T: T - 1, ("expected ({H}, {I}) = (H, I), like "
                                                           "torch.nn.RNN.weight_ih_l0")),
    ("seq_nan.py", "dx", lambda T: T - 2, "NaN"),
    ("seq_forward_no_b_hh.py", "h", lambda T: 0, "forward pass"),
    ("step_float32.py", "dx", lambda T: T - 1, "dtype float32; expected float64"),
])
def test_other_mistakes_are_located_and_explained(name, quantity, t_of, words):
    r = report(name)
    assert r.exit_code == 1
    for c in r.configs:
        u = c.units[0]
        cfg = c.config
        assert u.first_divergence == {"quantity": quantity, "t": t_of(cfg.seq_len)}
        assert u.diagnosis["bug"] is None
        text = u.diagnosis["text"] + " ".join(row["message"] for row in u.rows)
        assert words.format(H=cfg.hidden_size, I=cfg.input_size) in text


def test_shape_message_names_the_output_and_expected_shape():
    u = report("step_transposed_dW.py").configs[1].units[0]
    cfg = report("step_transposed_dW.py").configs[1].config
    H, I, T = cfg.hidden_size, cfg.input_size, cfg.seq_len
    msg = next(row["message"] for row in u.rows if row["quantity"] == "dW_ih_acc" and row["t"] == T - 1)
    assert msg == (f"dW_ih at t = {T - 1} has shape ({I}, {H}); expected ({H}, {I}) = (H, I), like "
                   f"torch.nn.RNN.weight_ih_l0 (it looks transposed)")


def test_nan_is_reported_as_nan():
    u = report("seq_nan.py").configs[0].units[0]
    bad = [row for row in u.rows if row["quantity"] == "dx" and row["t"] is not None and not row["passed"]]
    assert bad and all(row["nonfinite"] > 0 and "NaN" in row["message"] for row in bad)
    assert "NaN" in u.diagnosis["text"]


def test_probes_localise_whole_sequence_code(tmp_path):
    """dWhh-uses-h_t in a whole-sequence file: only dW_hh differs; one step alone already shows it, so it shows at the
    first step the backward pass computes, t = T-1, as the step functions' check says (one story)."""
    src = (FILES / "torch_sequence.py").read_text().replace("dW_hh += d_pre.T @ h_prev", "dW_hh += d_pre.T @ h[t]")
    assert src != (FILES / "torch_sequence.py").read_text()
    path = tmp_path / "seq_dwhh_uses_ht.py"
    path.write_text(src)
    u = check_file(path, [RNNConfig(seq_len=4)]).configs[0].units[0]
    prefixes = [p for p in u.probes if p.kind == "prefix"]
    assert [p.n for p in prefixes] == [1, 2, 3] and all(p.failing == ["dW_hh"] for p in prefixes)
    assert u.first_divergence == {"quantity": "dW_hh", "t": 3}
    assert any("one step alone" in e.lower() for e in u.explanation)
    assert u.diagnosis["bug"] == "dWhh-uses-h_t"


def test_probe_upstream_at_a_single_step_shows_where_it_enters():
    """forget-carry: the upstream gradient at t = 0 alone needs no carry, so it agrees; later steps' do not."""
    u = report("seq_forget_carry.py").configs[0].units[0]
    ups = {p.n: p.failing for p in u.probes if p.kind == "upstream"}
    assert ups[0] == [] and ups[2] != []
    assert any("t = 0 alone gives the right result" in e for e in u.explanation)


# ----------------------------------------------------------------------------------------------------------------------
# the student's code failing: exit 3 within the limits

def test_exception_shows_the_students_own_frames_only():
    r = report("raises.py")
    assert r.exit_code == 3 and r.failure.kind == "exception"
    msg = r.failure.message
    assert "raises.py" in msg and "in helper" in msg and "in rnn_step_backward" in msg and "ValueError" in msg
    assert "child.py" not in msg and "bptt" not in msg.replace(str(FILES), "")
    assert r.failure.where == "rnn_step_backward at t = 2"


def test_endless_loop_hits_the_time_limit():
    t0 = time.monotonic()
    r = check_file(FILES / "loops.py", timeout=2.0)
    assert r.exit_code == 3 and r.failure.kind == "timeout" and "time limit of 2 s" in r.failure.message
    assert time.monotonic() - t0 < 2.0 + 10.0


def test_unbounded_allocation_hits_the_memory_limit_promptly():
    t0 = time.monotonic()
    r = check_file(FILES / "allocates.py", timeout=60.0, memory_mb=512)
    assert r.exit_code == 3 and r.failure.kind in ("memory", "crash") and "memory" in r.failure.message
    assert time.monotonic() - t0 < 30.0      # long before the time limit: the memory limit stopped it


# ----------------------------------------------------------------------------------------------------------------------
# the command line

def test_cli_passes_a_correct_file(capsys):
    code, out, _ = run_cli(capsys, "check", str(FILES / "torch_step.py"))
    assert code == 0 and "PASS" in out and "(a) step functions" in out


def test_cli_json_object(capsys):
    code, out, _ = run_cli(capsys, "check", str(FILES / "seq_forget_carry.py"), "--json", "--seq-len", "4")
    assert code == 1
    obj = json.loads(out)
    assert obj["passed"] is False and obj["api"] == "b"
    assert obj["first_divergence"] == {"quantity": "dx", "t": 2}
    assert obj["diagnosis"]["bug"] == "forget-carry" and obj["diagnosis"]["text"]
    (cfg,) = obj["configs"]                                   # config flags select exactly one config
    assert cfg["config"]["seq_len"] == 4 and cfg["passed"] is False
    row = next(r for r in cfg["rows"] if r["quantity"] == "dx" and r["t"] == 2)
    assert row["passed"] is False and row["max_rel_err"] > 1e-10


def test_cli_text_names_quantity_t_and_bug(capsys):
    code, out, _ = run_cli(capsys, "check", str(FILES / "step_carry_transposed.py"))
    assert code == 1
    assert "MISMATCH: dh_prev at t = 2 (0-based)" in out and "carry-transposed" in out


def test_cli_student_failure_is_exit_3(capsys):
    code, out, _ = run_cli(capsys, "check", str(FILES / "raises.py"), "--timeout", "30")
    assert code == 3 and "raises.py" in out and "ValueError" in out


@pytest.mark.parametrize("argv, flag", [
    (["check", "no/such/file.py"], "no such file"),
    (["check", str(FILES / "no_shape.py")], "no recognisable shape"),
    (["check", str(FILES / "torch_step.py"), "--bug", "forget-carry"], "--bug"),
    (["check", str(FILES / "torch_step.py"), "--truncate", "2"], "--truncate"),
    (["check", str(FILES / "torch_step.py"), "--timeout", "0"], "--timeout"),
    (["check", str(FILES / "torch_step.py"), "--hidden-size", "0"], "--hidden-size"),
    (["check", str(FILES / "torch_step.py"), "--cell", "lstm"], "--cell lstm"),
])
def test_cli_usage_errors_are_exit_2(capsys, argv, flag):
    assert_usage_error(*run_cli(capsys, *argv), flag)


def test_arrays_compare_like_code():
    """The same comparison serves the NPZ path: the reference's own numbers pass, a scaled dW_hh fails there."""
    from bptt.check import arrays
    cfg = RNNConfig(seq_len=4)
    ref = checker.reference(checker.draw_problem(cfg))
    good = {"dx": ref.torch_rnn.dx, "dh0": ref.torch_rnn.dh0, **ref.torch_rnn.gradients,
            "dh_prev": ref.unrolled.dh_prev}
    assert arrays.check_arrays(good, cfg).passed
    bad = dict(good, dW_hh=good["dW_hh"] * 1.001)
    r = arrays.check_arrays(bad, cfg)
    assert not r.passed and r.first_failing()[1].first_divergence["quantity"] == "dW_hh"
    assert np.isfinite(r.configs[0].units[0].rows[0]["max_rel_err"])


def test_syntax_error_is_exit_3_with_the_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import numpy as np\n\ndef rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh)\n    return x\n")
    r = check_file(path, [RNNConfig()])
    assert r.exit_code == 3 and r.failure.where == "importing your file"
    assert "SyntaxError" in r.failure.message and "line 3" in r.failure.message


def test_processes_started_by_the_students_code_do_not_outlive_the_check(tmp_path):
    pidfile = tmp_path / "pid.txt"
    path = tmp_path / "spawns.py"
    path.write_text(
        "import subprocess, sys\n"
        "def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):\n"
        "    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"    open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "    raise ValueError('the child process ends here; the one it started must not live on')\n"
        "def rnn_backward(dh, cache):\n"
        "    pass\n")
    r = check_file(path, [RNNConfig()])
    assert r.exit_code == 3 and r.failure.kind == "exception"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent to reap it counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cli_memory_limit_is_exit_3_with_json(capsys):
    code, out, _ = run_cli(capsys, "check", str(FILES / "allocates.py"), "--memory", "512", "--json")
    obj = json.loads(out)
    assert code == 3 and obj["passed"] is False and obj["error"]["kind"] in ("memory", "crash")
    assert "512 MiB" in obj["error"]["message"]


def test_class_without_a_carry_attribute_passes_with_a_note(tmp_path):
    src = (FILES / "worked_exercise.py").read_text().replace("self.carry", "self._sent_back")
    path = tmp_path / "cell_without_carry.py"
    path.write_text(src)
    r = check_file(path, [RNNConfig()])
    assert r.exit_code == 0
    assert any("dh0 are not checked" in n for n in r.notes)
    assert not any(row["quantity"] in ("dh0", "dh_prev") for row in r.configs[0].units[0].rows)


# ----------------------------------------------------------------------------------------------------------------------
# the worked exercise's class as written: bias stacks of d_tanh itself, (B, H) per step

def test_stack_total_sums_like_the_exercise():
    from bptt.check.child import stack_total
    rng = np.random.default_rng(1)
    B, H = 3, 5
    entries = [rng.standard_normal((B, H)) for _ in range(4)]
    assert np.allclose(stack_total(entries, bias=True, H=H), np.sum(entries, axis=(0, 1)))
    flat = [e.sum(axis=0) for e in entries]
    assert np.allclose(stack_total(flat, bias=True, H=H), np.sum(entries, axis=(0, 1)))
    weights = [rng.standard_normal((H, 4)) for _ in range(3)]
    assert np.allclose(stack_total(weights, bias=False, H=H), np.sum(weights, axis=0))


def test_exercise_class_with_a_forgotten_carry_reports_the_carry_not_a_shape():
    r = report("exercise_class_carry_kept_unused.py")
    assert r.exit_code == 1
    for c in r.configs:
        (u,) = c.units
        assert u.first_divergence == {"quantity": "dx", "t": c.config.seq_len - 2}
        assert u.diagnosis["bug"] == "forget-carry"
        assert not any("has shape" in row["message"] for row in u.rows)


# ----------------------------------------------------------------------------------------------------------------------
# calls twice: state kept between calls

@pytest.mark.parametrize("name, differ", [
    ("seq_module_buffers.py", {"dW_ih", "dW_hh", "db_ih", "db_hh"}),
    ("class_shared_lists.py", {"dx", "dW_ih_acc", "dW_hh_acc", "db_ih_acc", "db_hh_acc"}),
])
def test_state_kept_between_calls_is_reported(name, differ):
    r = report(name)
    assert r.exit_code == 1
    for c in r.configs:
        (u,) = c.units
        assert all(row["passed"] for row in u.rows)          # the first call (a fresh import) is right
        assert u.state is not None and not u.passed
        named = {d.split(" ")[0] for d in u.state["differs"]}
        assert differ <= named
        assert u.diagnosis["hint"] == "state"
        assert checker.STATE_TEXT in u.diagnosis["text"].lower()
        assert all(q in u.diagnosis["text"] for q in sorted(differ)[:3])


def test_a_correct_file_called_twice_has_no_state():
    for c in report("torch_sequence.py").configs:
        assert all(u.state is None for u in c.units)


# ----------------------------------------------------------------------------------------------------------------------
# bookkeeping hints before maths hints

@cache
def report_other(name: str) -> CheckReport:
    """The report at the second default config only (all sizes differ: I=3, H=7, T=5, B=2)."""
    return check_file(FILES / name, checker.default_configs()[1:])


@pytest.mark.parametrize("name, hint, quantity, t_of, words", [
    ("seq_skip_last_step.py", "skipped-step", "dx", lambda T: T - 1, "did your loop skip t = {last}?"),
    ("seq_loop_stops_early.py", "skipped-step", "dx", lambda T: 0, "did your loop skip t = 0?"),
    ("seq_dx_list.py", "dx-reversed", "dx", lambda T: T - 1, "insert each step's dx at the front"),
    ("exercise_class_dx_order.py", "dx-reversed", "dx", lambda T: T - 2, "reverse time order"),
    ("step_dwhh_outer.py", "transposed", "dW_hh_acc", lambda T: T - 1, "d_pre.T @ h_prev, not h_prev.T @ d_pre"),
    ("cs231n_db_average.py", "batch-mean", "db_ih", lambda T: T - 1, "divided by B = 2"),
    ("seq_bias_sum.py", "wrong-axis", "db_ih", lambda T: T - 1, "wrong axis"),
    ("coursera_dba.py", "wrong-axis", "db_ih_acc", lambda T: T - 1, "axis 1 (m)"),
])
def test_bookkeeping_hints(name, hint, quantity, t_of, words):
    r = report_other(name)
    assert r.exit_code == 1
    (c,) = r.configs
    T = c.config.seq_len
    for u in c.units:
        assert u.first_divergence["quantity"].startswith(quantity) and u.first_divergence["t"] == t_of(T), u.unit
        assert u.diagnosis["hint"] == hint and u.diagnosis["bug"] is None
        assert words.format(last=T - 1) in u.diagnosis["text"]
        assert "check d_pre" not in u.diagnosis["text"] and "the carry added" not in u.diagnosis["text"]


def test_without_a_pattern_the_maths_explains(monkeypatch):
    """The same carry mistake with the zoo emptied: no bookkeeping pattern holds, so the text is about the carry."""
    monkeypatch.setitem(checker.CELL_BUGS, "rnn", ("none",))
    u = check_file(FILES / "exercise_class_carry_kept_unused.py", [RNNConfig()]).configs[0].units[0]
    assert u.diagnosis["hint"] is None and u.diagnosis["bug"] is None and "carry" in u.diagnosis["text"]


# ----------------------------------------------------------------------------------------------------------------------
# the Coursera layout

@pytest.mark.parametrize("name, units, bug, quantity, t_of", [
    ("coursera_cell_da.py", ["coursera-step", "coursera-sequence"], "no-activation-derivative", "dx", lambda T: T - 1),
    ("coursera_seq_carry.py", ["coursera-sequence"], "forget-carry", "dx", lambda T: T - 2),
])
def test_coursera_mistakes(name, units, bug, quantity, t_of):
    r = report(name)
    assert r.exit_code == 1 and r.units == units and r.api == "e"
    for c in r.configs:
        for u in c.units:
            assert u.first_divergence == {"quantity": quantity, "t": t_of(c.config.seq_len)}
            assert u.diagnosis["bug"] == bug


def test_coursera_single_bias_is_compared_with_both_of_torchs():
    u = report("coursera_rnn.py").configs[0].units[1]
    qs = {row["quantity"] for row in u.rows}
    assert {"db_ih", "db_hh", "dW_ih", "dW_hh", "dh0"} <= qs


def test_coursera_shape_message_uses_the_courses_own_names():
    u = report_other("coursera_dba.py").configs[0].units[0]
    msg = next(row["message"] for row in u.rows if row["message"])
    assert msg.startswith("dba at t = 4 has shape (1, 2); expected (7, 1) = (n_a, 1), like parameters['ba']")


# ----------------------------------------------------------------------------------------------------------------------
# one story per mistake

def test_step_and_sequence_checks_tell_one_story(tmp_path):
    """dW_hh from h_t in a CS231n file with step and whole-sequence functions: both localise at t = T-1, and the
    report leads with the step functions' headline."""
    src = (FILES / "cs231n.py").read_text().replace("x.T @ da, prev_h.T @ da", "x.T @ da, next_h.T @ da")
    path = tmp_path / "rnn_layer.py"
    path.write_text(src)
    r = check_file(path, [RNNConfig()])
    step, seq = r.configs[0].units
    assert step.first_divergence == {"quantity": "dW_hh_acc", "t": 2}
    assert seq.first_divergence == {"quantity": "dW_hh", "t": 2}
    from bptt.check.report import report_text
    text = report_text(r)
    assert text.count("MISMATCH") == 1 and "MISMATCH: dW_hh_acc at t = 2 (0-based), in your (c) step" in text


@pytest.mark.parametrize("name", ["seq_forget_carry.py", "step_transposed_dW.py", "class_shared_lists.py",
                                  "coursera_cell_da.py"])
def test_default_report_is_short_and_verbose_has_the_tables(capsys, name):
    code, out, _ = run_cli(capsys, "check", str(FILES / name))
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) <= 25, out
    head = next(i for i, line in enumerate(lines) if line.startswith("MISMATCH:"))
    assert head < lines.index("evidence:") and lines[head + 1 + lines[head + 1].startswith("  ")].startswith("why: ")
    assert "max abs err" not in out and "--verbose" in out
    code, out, _ = run_cli(capsys, "check", str(FILES / name), "--verbose")
    assert code == 1 and "max abs err" in out and out.count("MISMATCH") == 1


def test_a_file_slow_to_import_is_imported_once_per_config_not_per_probe(tmp_path):
    """Each config's problem starts from a fresh import; the probes re-import only a file that imports quickly."""
    counter = tmp_path / "imports.txt"
    src = (f"import time\nopen({str(counter)!r}, 'a').write('x')\ntime.sleep(0.15)\n" +
           (FILES / "torch_sequence.py").read_text())
    path = tmp_path / "slow_import.py"
    path.write_text(src)
    r = check_file(path)
    assert r.exit_code == 0
    assert counter.read_text() == "xx"           # two configs; the probes reuse the module
