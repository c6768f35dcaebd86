"""The command line (exit codes, one-line errors) and the exports (NPZ keys and shapes, tidy CSV, repro script)."""
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from clitools import assert_usage_error, run_cli

from bptt.analysis import analyze
from bptt.config import RNNConfig
from bptt.export import CSV_COLUMNS, csv_bytes, npz_bytes, repro_script, trace_arrays

SMALL = RNNConfig(input_size=3, hidden_size=4, seq_len=4, batch_size=2, seed=7)


@pytest.fixture(scope="module")
def small():
    return analyze(SMALL)


# ----------------------------------------------------------------------------------------------------------------------
# verify

def test_verify_passes_and_reports_every_quantity(capsys):
    code, out, err = run_cli(capsys, "verify", "--seq-len", "4", "--hidden-size", "3")
    assert code == 0 and err == ""
    for q in ("dh_total", "d_pre", "dW_hh_acc", "dW_ih", "dh0"):
        assert q in out
    assert "everything agrees" in out


def test_verify_json_matches_the_analysis(capsys):
    code, out, _ = run_cli(capsys, "verify", "--json", "--seed", "7", "--input-size", "3", "--hidden-size", "4",
                           "--seq-len", "4", "--batch-size", "2")
    data = json.loads(out)
    an = analyze(SMALL)
    assert code == 0 and data["passed"] is True and data["first_divergence"] is None
    assert data["config"] == SMALL.to_dict()
    assert data["worst_rel_err"] == pytest.approx(an.worst_rel_err, rel=1e-12)
    assert {q["quantity"] for q in data["quantities"]} >= {"dh_total", "d_pre", "dW_ih", "dh0"}


@pytest.mark.parametrize("bug", ["forget-carry", "carry-transposed"])
def test_verify_with_a_bug_exits_1_and_names_the_first_divergence(capsys, bug):
    code, out, _ = run_cli(capsys, "verify", "--json", "--bug", bug, "--seq-len", "5")
    data = json.loads(out)
    assert code == 1 and data["passed"] is False
    assert data["first_divergence"] == analyze(RNNConfig(bug=bug, seq_len=5)).first_divergence
    assert data["first_divergence"] is not None


def test_verify_counts_failing_rows_the_same_way_for_steps_and_whole_sequences(capsys):
    code, out, _ = run_cli(capsys, "verify", "--bug", "forget-carry", "--seq-len", "4")
    an = analyze(RNNConfig(bug="forget-carry", seq_len=4))
    tab = an.table
    assert code == 1 and "(0 of" not in out
    lines = {tuple(line.split()[:3]): line for line in out.splitlines()}
    # a final gradient is one whole-sequence row: failing, it is "FAIL (1 of 1)", and its steps column says so
    dw = next(v for k, v in lines.items() if k[0] == "dW_hh" and "torch.nn.RNN" in v and v.startswith("dW_hh "))
    assert "whole" in dw.split() and dw.endswith("FAIL (1 of 1)")
    # a per-step row: the number of failing steps of the table, of T
    rows = tab[(tab["quantity"] == "dh_total") & (tab["reference"] == "unrolled autograd")]
    line = next(v for v in out.splitlines() if v.startswith("dh_total "))
    assert line.endswith(f"FAIL ({int((~rows['passed']).sum())} of {len(rows)})") and len(rows) == 4
    data = json.loads(run_cli(capsys, "verify", "--json", "--bug", "forget-carry", "--seq-len", "4")[1])
    for q in data["quantities"]:
        assert (q["failing_steps"] == 0) if q["passed"] else (1 <= q["failing_steps"] <= q["rows"])
        assert q["whole"] == (q["rows"] == 1 and q["reference"] == "torch.nn.RNN")


@pytest.mark.parametrize("argv,cfg", [([], RNNConfig()), (["--bug", "forget-carry"], RNNConfig(bug="forget-carry"))])
def test_verify_values_prints_both_sides_side_by_side_to_6_decimals(capsys, argv, cfg):
    code, out, _ = run_cli(capsys, "verify", "--values", *argv)
    an = analyze(cfg)
    assert code == (0 if cfg.bug == "none" else 1)
    for q, mine, ref in (("dW_ih", an.engine.gradients["dW_ih"], an.torch_rnn.dW_ih), ("dx", an.engine.dx,
                                                                                       an.torch_rnn.dx)):
        assert f"{q} (NumPy)" in out and f"{q} (PyTorch)" in out
        # the engine's value and torch's value of the same entry are on one line, engine first
        line = next(line for line in out.splitlines() if f"{ref.flat[0]:.6f}" in line and " | " in line)
        left, right = line.split(" | ")
        assert f"{mine.flat[0]:.6f}" in left and f"{ref.flat[0]:.6f}" in right


def test_verify_json_values_includes_the_values_at_full_precision(capsys):
    code, out, _ = run_cli(capsys, "verify", "--json", "--values", "--seed", "7", "--input-size", "3",
                           "--hidden-size", "4", "--seq-len", "4", "--batch-size", "2")
    data = json.loads(out)
    an = analyze(SMALL)
    assert code == 0 and data["passed"] is True
    assert list(data["values"]) == ["h", "dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh"]
    np.testing.assert_array_equal(np.array(data["values"]["dW_hh"]["numpy"]), an.engine.gradients["dW_hh"])
    np.testing.assert_array_equal(np.array(data["values"]["dx"]["torch"]), an.torch_rnn.dx)
    code, out, _ = run_cli(capsys, "verify", "--json", "--seed", "7")
    assert "values" not in json.loads(out)                      # only when asked for


@pytest.mark.parametrize("argv, flag", [
    (["verify", "--hidden-size", "0"], "--hidden-size"),
    (["verify", "--hidden-size", "1e9"], "--hidden-size"),
    (["verify", "--seq-len", "abc"], "--seq-len"),
    (["verify", "--hh-scale", "nan"], "--hh-scale"),
    (["verify", "--hh-scale", "11"], "--hh-scale"),
    (["verify", "--nonlinearity", "sigmoid"], "--nonlinearity"),
    (["verify", "--upstream", "first"], "--upstream"),
    (["verify", "--bug", "typo"], "--bug"),
    (["verify", "--truncate", "-1"], "--truncate"),
    (["verify", "--seed", "4294967296"], "--seed"),
    (["verify", "--seq-len", "200", "--hidden-size", "256", "--input-size", "256"], "--seq-len"),
    (["export", "--output", "trace.txt"], "--output"),
    (["export", "--output", "/nonexistent-dir/repro.py"], "--output"),
    (["export", "--output", "/nonexistent-dir/trace.npz"], "--output"),
    (["export"], "--output"),
    (["verify", "--frobnicate"], "--frobnicate"),
])
def test_bad_input_exits_2_with_one_line_naming_the_flag(capsys, argv, flag):
    assert_usage_error(*run_cli(capsys, *argv), flag)


def test_bad_input_from_a_real_process_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "bptt", "verify", "--batch-size", "65"], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "--batch-size" in proc.stderr and "1..64" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------------------------------------------------
# export

def test_export_writes_npz_and_csv(capsys, tmp_path, small):
    for name in ("t.npz", "t.csv"):
        code, out, _ = run_cli(capsys, "export", "--seed", "7", "--input-size", "3", "--hidden-size", "4",
                               "--seq-len", "4", "--batch-size", "2", "--output", str(tmp_path / name))
        assert code == 0 and (tmp_path / name).stat().st_size > 0
    z = np.load(tmp_path / "t.npz", allow_pickle=False)
    np.testing.assert_array_equal(z["dW_hh_acc"], small.engine.dW_hh_acc)


def test_npz_has_every_documented_key_with_its_shape(small):
    T, B, I, H = 4, 2, 3, 4
    z = np.load(io.BytesIO(npz_bytes(small)), allow_pickle=False)
    shapes = {
        "x": (T, B, I), "h0": (B, H), "dh_out": (T, B, H), "W_ih": (H, I), "W_hh": (H, H), "b_ih": (H,),
        "b_hh": (H,), "h": (T, B, H), "dh_next": (T, B, H), "dh_total": (T, B, H), "d_pre": (T, B, H),
        "dx": (T, B, I), "dh0": (B, H), "dW_ih_acc": (T, H, I), "dW_hh_acc": (T, H, H), "db_ih_acc": (T, H),
        "db_hh_acc": (T, H), "dW_ih": (H, I), "dW_hh": (H, H), "db_ih": (H,), "db_hh": (H,),
        "torch_h": (T, B, H), "torch_dx": (T, B, I), "torch_dh0": (B, H), "torch_dW_ih": (H, I),
        "torch_dW_hh": (H, H), "torch_db_ih": (H,), "torch_db_hh": (H,),
        "ref_dh_total": (T, B, H), "ref_d_pre": (T, B, H), "ref_dW_ih_acc": (T, H, I), "ref_dW_hh_acc": (T, H, H),
        "ref_db_ih_acc": (T, H), "ref_db_hh_acc": (T, H), "ref_dh_next": (T, B, H), "ref_dx": (T, B, I),
    }
    for key, shape in shapes.items():
        assert z[key].shape == shape, key
        assert z[key].dtype == np.float64, key
    assert RNNConfig.from_dict(json.loads(str(z["config_json"]))) == SMALL
    np.testing.assert_array_equal(z["dW_ih"], z["dW_ih_acc"][0])
    # X_acc[t] is the sum of the contributions of steps t..T-1
    np.testing.assert_allclose(z["dW_hh_acc"][1], small.engine.dW_hh_step[1:].sum(0), rtol=1e-12)
    np.testing.assert_allclose(z["ref_dW_hh_acc"], z["dW_hh_acc"], rtol=1e-10, atol=1e-12)


def test_csv_is_tidy_and_matches_the_npz(small):
    df = pd.read_csv(io.BytesIO(csv_bytes(small)))
    assert list(df.columns) == CSV_COLUMNS
    arrays = trace_arrays(small)
    rows = df[(df["quantity"] == "dW_hh_acc")]
    assert len(rows) == arrays["dW_hh_acc"].size
    got = np.zeros_like(arrays["dW_hh_acc"])
    got[rows["t"].astype(int), rows["j"].astype(int), rows["k"].astype(int)] = rows["numpy"]
    np.testing.assert_array_equal(got, arrays["dW_hh_acc"])      # %.17g round-trips float64 exactly
    dx = df[df["quantity"] == "dx"]
    assert dx["b"].notna().all() and dx["i"].notna().all() and dx["j"].isna().all()
    np.testing.assert_allclose(dx["numpy"], dx["reference_value"], rtol=1e-10, atol=1e-13)
    # one meaning per column: the reference's value is a number, its name a label, and each is the NPZ's
    assert set(dx["reference_name"]) == {"unrolled autograd"} and set(df["reference_name"]) == {"unrolled autograd",
                                                                                               "torch.nn.RNN"}
    dw = df[df["quantity"] == "dW_hh"]
    assert set(dw["reference_name"]) == {"torch.nn.RNN"}
    np.testing.assert_array_equal(dw["reference_value"].to_numpy().reshape(arrays["torch_dW_hh"].shape),
                                  arrays["torch_dW_hh"])
    assert df["reference_value"].dtype.kind == "f"


@pytest.mark.parametrize("argv,cfg", [
    ([], RNNConfig()),
    (["--bug", "tanh-applied-twice", "--hidden-size", "6", "--nonlinearity", "relu"],
     RNNConfig(bug="tanh-applied-twice", hidden_size=6, nonlinearity="relu")),
])
def test_export_writes_the_reproduction_script_like_the_apps_download(capsys, tmp_path, argv, cfg):
    path = tmp_path / "my_repro.py"
    code, out, err = run_cli(capsys, "export", "--output", str(path), *argv)
    assert code == 0 and err == "" and str(path) in out
    assert path.read_text() == repro_script(cfg, filename="my_repro.py")
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1].startswith("PASS"), proc.stdout + proc.stderr
