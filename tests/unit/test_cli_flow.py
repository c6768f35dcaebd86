"""`python -m bptt flow`: its numbers, its JSON (0-based t) and its refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import assert_usage_error, run_cli

from bptt.config import RNNConfig
from bptt.problem import draw_problem
from bptt.reference import torch_rnn_reference, unrolled_reference

FLAGS = ["--input-size", "3", "--hidden-size", "4", "--seq-len", "5", "--batch-size", "2", "--seed", "9"]
CFG = RNNConfig(input_size=3, hidden_size=4, seq_len=5, batch_size=2, seed=9)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, "flow", *argv)


def test_json_numbers_match_autograd(capsys):
    code, out, err = _run(capsys, *FLAGS, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["config"] == CFG.to_dict()
    ref = unrolled_reference(draw_problem(CFG))
    assert data["grad_norms"]["t"] == list(range(CFG.seq_len))                 # 0-based
    np.testing.assert_allclose(data["grad_norms"]["norm"], np.linalg.norm(ref.dh_total.reshape(5, -1), axis=1),
                               rtol=1e-10)
    np.testing.assert_allclose(data["grad_norms"]["per_batch"], np.linalg.norm(ref.dh_total, axis=2), rtol=1e-10)
    assert data["jacobian"]["t"] == CFG.seq_len - 1 and data["jacobian"]["distance"] == [1, 2, 3, 4, 5]
    assert len(data["jacobian"]["norm"]) == CFG.seq_len
    W = draw_problem(CFG).W_hh
    np.testing.assert_allclose(data["singular_values"], np.linalg.svd(W, compute_uv=False), rtol=1e-10)
    assert data["spectral_radius"] == pytest.approx(np.abs(np.linalg.eigvals(W)).max(), rel=1e-10)
    assert data["truncation_gap"] is None
    assert len(data["saturation"]["fraction"]) == CFG.seq_len
    assert CFG.hh_scale in data["hh_sweep"]["scales"]


def test_json_truncation_gap_matches_torch_rnn_with_and_without_detach(capsys):
    code, out, _ = _run(capsys, *FLAGS, "--truncate", "2", "--json")
    assert code == 0
    gap = json.loads(out)["truncation_gap"]
    p = draw_problem(CFG.replace(truncate=2))
    trunc, full = torch_rnn_reference(p).gradients, torch_rnn_reference(draw_problem(CFG)).gradients
    assert set(gap) == set(full)
    for k in full:
        assert gap[k] == pytest.approx(np.linalg.norm(trunc[k] - full[k]) / np.linalg.norm(full[k]), rel=1e-8)


def test_text_report_has_each_section(capsys):
    code, out, _ = _run(capsys, *FLAGS, "--truncate", "2", "--batch-element", "1")
    assert code == 0
    for needle in ("‖dL/dh_t‖", "t = 1..T", "batch element b = 1", "spectral radius", "singular values",
                   "truncation gap (truncate = 2)", "dW_hh"):
        assert needle in out
    code, out, _ = _run(capsys, *FLAGS)
    assert "truncation gap" not in out


@pytest.mark.parametrize("argv, flag", [
    (["--seq-len", "0"], "--seq-len"),
    (["--nonlinearity", "sigmoid"], "--nonlinearity"),
    (["--truncate", "x"], "--truncate"),
    (["--bug", "typo"], "--bug"),
    (["--batch-size", "2", "--batch-element", "2"], "--batch-element"),
    (["--batch-element", "one"], "--batch-element"),
])
def test_bad_input_exits_2_with_one_line_naming_the_flag(capsys, argv, flag):
    assert_usage_error(*_run(capsys, *argv), flag)
