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
from bptt.bugs import first_divergence
from bptt.cells import BUGS, CELLS
from bptt.config import ConfigError, RNNConfig
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
    for q, mine, ref in (("dW_ih", an.engine.gradients["dW_ih"], an.torch_rnn.gradients["dW_ih"]), ("dx", an.engine.dx,
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


def test_npz_full_gradients_are_the_running_sums_at_t0_bit_for_bit(small):
    z = np.load(io.BytesIO(npz_bytes(small)), allow_pickle=False)
    for w in ("dW_ih", "dW_hh", "db_ih", "db_hh"):
        np.testing.assert_array_equal(z[w], z[f"{w}_acc"][0], err_msg=w)


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


# ----------------------------------------------------------------------------------------------------------------------
# the gated cells: --cell lstm | gru

GATED = {"lstm": RNNConfig(cell="lstm", input_size=3, hidden_size=4, seq_len=4, batch_size=2, seed=7),
         "gru": RNNConfig(cell="gru", input_size=3, hidden_size=4, seq_len=4, batch_size=2, seed=7)}
SMALL_FLAGS = ("--seed", "7", "--input-size", "3", "--hidden-size", "4", "--seq-len", "4", "--batch-size", "2")


@pytest.fixture(scope="module")
def gated():
    return {cell: analyze(cfg) for cell, cfg in GATED.items()}


@pytest.mark.parametrize("cell,other", [("lstm", "rnn"), ("gru", "lstm"), ("rnn", "gru")])
def test_a_bug_of_another_cell_is_refused_naming_bug_and_listing_the_cells_bugs(capsys, cell, other):
    foreign = BUGS[other][1]
    with pytest.raises(ConfigError) as err:
        RNNConfig(cell=cell, bug=foreign)
    assert err.value.field == "bug" and repr(foreign) in str(err.value)
    assert all(b in str(err.value) for b in BUGS[cell])
    code, out, errtext = run_cli(capsys, "verify", "--cell", cell, "--bug", foreign)
    assert_usage_error(code, out, errtext, "--bug")
    assert all(b in errtext for b in BUGS[cell][1:])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_relu_is_refused_for_the_gated_cells(capsys, cell):
    with pytest.raises(ConfigError) as err:
        RNNConfig(cell=cell, nonlinearity="relu")
    assert err.value.field == "nonlinearity" and "'relu'" in str(err.value)
    code, out, errtext = run_cli(capsys, "verify", "--cell", cell, "--nonlinearity", "relu")
    assert_usage_error(code, out, errtext, "--nonlinearity")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_verify_a_gated_cell_exits_0_and_prints_both_sides(capsys, cell, gated):
    code, out, err = run_cli(capsys, "verify", "--cell", cell, "--values", *SMALL_FLAGS)
    an = gated[cell]
    assert code == 0 and err == "" and "everything agrees" in out
    assert "d_gates" in out and "dh_total" in out
    for q, mine, ref in (("dW_hh", an.engine.gradients["dW_hh"], an.torch_rnn.gradients["dW_hh"]),
                         ("dx", an.engine.dx, an.torch_rnn.dx)):
        assert f"{q} (NumPy)" in out and f"{q} (PyTorch)" in out
        line = next(line for line in out.splitlines() if f"{ref.flat[0]:.6f}" in line and " | " in line)
        left, right = line.split(" | ")
        assert f"{mine.flat[0]:.6f}" in left and f"{ref.flat[0]:.6f}" in right
    if cell == "lstm":
        assert "dc0 (NumPy)" in out and "dc0 (PyTorch)" in out


@pytest.mark.parametrize("cell,bug", [("lstm", "no-gate-sigmoid-derivative"), ("lstm", "forget-cell-carry"),
                                      ("gru", "z-swapped"), ("gru", "drop-z-carry")])
def test_verify_a_gated_bug_exits_1_with_the_first_divergence_and_its_gate(capsys, cell, bug):
    code, out, _ = run_cli(capsys, "verify", "--json", "--cell", cell, "--bug", bug, *SMALL_FLAGS)
    data = json.loads(out)
    assert code == 1 and data["passed"] is False
    assert data["config"]["cell"] == cell
    assert data["first_divergence"] == first_divergence(bug, 4, cell)
    assert ("gate" in data["first_divergence"]) == (len(first_divergence(bug, 4, cell)) == 3)


# the NPZ of each cell: every documented key with its shape (G gate blocks of H rows)
def _gated_shapes(cell: str, T: int, B: int, I: int, H: int) -> dict[str, tuple[int, ...]]:
    G = {"lstm": 4, "gru": 3}[cell]
    bh = (T, B, H)
    per_step = {"lstm": {"i": bh, "f": bh, "g": bh, "o": bh, "c": bh, "h": bh, "dh_next": bh, "dh_total": bh,
                         "dc_next": bh, "dc_total": bh, "d_gates": (T, B, 4 * H), "dx": (T, B, I), "dh_prev": bh,
                         "dc_prev": bh},
                "gru": {"r": bh, "z": bh, "n": bh, "hn": bh, "h": bh, "dh_next": bh, "dh_total": bh,
                        "d_gates": (T, B, 3 * H), "d_hn": bh, "dx": (T, B, I), "dh_prev": bh}}[cell]
    weights = {"W_ih": (G * H, I), "W_hh": (G * H, H), "b_ih": (G * H,), "b_hh": (G * H,)}
    initial = {"dh0": (B, H), **({"dc0": (B, H)} if cell == "lstm" else {})}
    out = {"x": (T, B, I), "h0": (B, H), **({"c0": (B, H)} if cell == "lstm" else {}), "dh_out": bh, **weights,
           **per_step, **initial, **{f"d{w}": s for w, s in weights.items()},
           **{f"d{w}_acc": (T, *s) for w, s in weights.items()},
           "torch_h": bh, "torch_dx": (T, B, I), **{f"torch_{k}": s for k, s in initial.items()},
           **{f"torch_d{w}": s for w, s in weights.items()},
           **{f"ref_{q}": s for q, s in per_step.items()}, **{f"ref_d{w}_acc": (T, *s) for w, s in weights.items()}}
    return out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_export_of_a_gated_cell_has_every_documented_key(capsys, tmp_path, cell, gated):
    path = tmp_path / f"{cell}.npz"
    code, out, err = run_cli(capsys, "export", "--cell", cell, *SMALL_FLAGS, "--output", str(path))
    assert code == 0 and err == ""
    z = np.load(path, allow_pickle=False)
    for key, shape in _gated_shapes(cell, 4, 2, 3, 4).items():
        assert key in z.files, key
        assert z[key].shape == shape and z[key].dtype == np.float64, key
    assert ("c0" in z.files) == ("dc0" in z.files) == ("torch_dc0" in z.files) == (cell == "lstm")
    cfg = RNNConfig.from_dict(json.loads(str(z["config_json"])))
    assert cfg == GATED[cell] and json.loads(str(z["config_json"]))["cell"] == cell
    an = gated[cell]
    np.testing.assert_array_equal(z["d_gates"], an.engine.d_gates)
    np.testing.assert_array_equal(z["dW_hh_acc"], an.engine.dW_hh_acc)
    np.testing.assert_array_equal(z["dW_ih"], z["dW_ih_acc"][0])
    np.testing.assert_allclose(z["torch_dW_hh"], z["dW_hh"], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(z["ref_d_gates"], z["d_gates"], rtol=1e-10, atol=1e-13)
    if cell == "gru":                                    # db_hh != db_ih in the n block (d_hn, not d_n)
        H = 4
        assert not np.allclose(z["db_hh"][2 * H:], z["db_ih"][2 * H:])
        np.testing.assert_allclose(z["db_hh"][:2 * H], z["db_ih"][:2 * H], rtol=1e-14)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_csv_of_a_gated_cell_names_each_rows_gate(cell, gated):
    an = gated[cell]
    df = pd.read_csv(io.BytesIO(csv_bytes(an)), keep_default_na=False, na_values=[""])
    assert list(df.columns) == CSV_COLUMNS
    H, gates = 4, CELLS[cell].gates
    for q in ("d_gates", "dW_ih_acc", "dW_hh", "db_ih"):
        rows = df[df["quantity"] == q]
        assert len(rows) > 0, q
        want = np.asarray(gates)[rows["j"].astype(int).to_numpy() // H]
        assert (rows["gate"].to_numpy() == want).all(), q
        assert set(rows["gate"]) == set(gates)
    assert df[df["quantity"].isin(["dh_total", "dx", "h"])]["gate"].isna().all()
    got = df[df["quantity"] == "d_gates"]
    d = np.zeros_like(an.engine.d_gates)
    d[got["t"].astype(int), got["b"].astype(int), got["j"].astype(int)] = got["numpy"]
    np.testing.assert_array_equal(d, an.engine.d_gates)
