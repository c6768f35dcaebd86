"""The checker measured on the whole set of student files (tests/unit/check_files and its gated/ folder), every shape
of every cell, against the issue's targets: every mistake detected; at least 90% located to the right quantity (and
gate) and step; at least 90% of the bug-zoo mistakes named; no zoo name pinned on a mistake that is not one; no false
alarm on a correct file. The expected findings live here, not in the files (which are written as students write)."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bptt.config import RNNConfig

FILES = Path(__file__).parent / "check_files"
CONFIG = RNNConfig(input_size=3, hidden_size=5, seq_len=4, batch_size=2)   # small, every size but T = H distinct
T = CONFIG.seq_len
LAST, BEFORE = T - 1, T - 2

CORRECT = [
    "torch_step.py", "torch_sequence.py", "cs231n.py", "worked_exercise.py", "exercise_class_batch_bias.py",
    "coursera_rnn.py",
    *(f"gated/{n}.py" for n in (
        "lstm_torch_step", "lstm_torch_sequence", "lstm_cs231n", "lstm_coursera", "gru_torch_step",
        "gru_torch_sequence", "lstm_layer", "gru_blocks", "gru_seq_insert", "lstm_cs231n_split", "lstm_coursera_v2",
        "gru_step_einsum", "lstm_step_plain", "gru_layer")),
]

# file -> (quantity, gate, t, zoo bug or None) of the report's headline; "state": a second call differs (located when
# the diagnosis says so)
MISTAKES: dict[str, tuple] = {
    # the vanilla RNN
    "seq_forget_carry.py": ("dx", None, BEFORE, "forget-carry"),
    "step_no_activation_derivative.py": ("dx", None, LAST, "no-activation-derivative"),
    "cs231n_derivative_of_pre.py": ("dx", None, LAST, "derivative-of-pre-activation"),
    "class_dwhh_uses_ht.py": ("dW_hh_acc", None, LAST, "dWhh-uses-h_t"),
    "step_carry_transposed.py": ("dh_prev", None, LAST, "carry-transposed"),
    "class_overwrite.py": ("dW_ih_acc", None, BEFORE, "overwrite-instead-of-accumulate"),
    "seq_drop_upstream.py": ("dx", None, BEFORE, "drop-upstream"),
    "cs231n_tanh_twice.py": ("dx", None, LAST, "tanh-applied-twice"),
    "seq_dh0_not_returned.py": ("dh0", None, 0, "dh0-not-returned"),
    "coursera_cell_da.py": ("dx", None, LAST, "no-activation-derivative"),
    "coursera_seq_carry.py": ("dx", None, BEFORE, "forget-carry"),
    "exercise_class_carry_kept_unused.py": ("dx", None, BEFORE, "forget-carry"),
    "step_transposed_dW.py": ("dW_ih_acc", None, LAST, None),
    "seq_nan.py": ("dx", None, BEFORE, None),
    "seq_forward_no_b_hh.py": ("h", None, 0, None),
    "step_float32.py": ("dx", None, LAST, None),
    "seq_skip_last_step.py": ("dx", None, LAST, None),
    "seq_loop_stops_early.py": ("dx", None, 0, None),
    "seq_dx_list.py": ("dx", None, LAST, None),
    "exercise_class_dx_order.py": ("dx", None, BEFORE, None),
    "step_dwhh_outer.py": ("dW_hh_acc", None, LAST, None),
    "cs231n_db_average.py": ("db_ih_acc", None, LAST, None),
    "seq_bias_sum.py": ("db_ih", None, LAST, None),
    "coursera_dba.py": ("db_ih_acc", None, LAST, None),
    "seq_module_buffers.py": "state",
    "class_shared_lists.py": "state",
    # the LSTM, torch layout
    "gated/lstm_step_a.py": ("d_gates", "i", BEFORE, "forget-cell-carry"),
    "gated/lstm_step_b.py": ("d_gates", "i", LAST, "no-gate-sigmoid-derivative"),
    "gated/lstm_step_c.py": ("d_gates", "o", LAST, "output-gate-uses-c"),
    "gated/lstm_step_d.py": ("dc_prev", None, LAST, None),
    "gated/lstm_step_e.py": ("dW_hh_acc", "i", LAST, None),
    "gated/lstm_step_f.py": ("db_ih_acc", "i", LAST, None),
    "gated/lstm_step_g.py": ("d_gates", "f", LAST, None),
    "gated/lstm_step_h.py": ("dx", None, LAST, None),
    "gated/lstm_step_i.py": ("c", None, 0, None),
    "gated/lstm_seq_a.py": ("d_gates", "i", LAST, "drop-cell-path"),
    "gated/lstm_seq_b.py": ("d_gates", "g", LAST, "gate-order-ifog"),
    "gated/lstm_seq_c.py": ("dc0", None, 0, None),
    "gated/lstm_seq_d.py": ("d_gates", "i", BEFORE, None),
    "gated/lstm_seq_e.py": ("d_gates", "o", LAST, None),
    "gated/lstm_seq_f.py": ("dx", None, LAST, None),
    "gated/lstm_seq_g.py": "state",
    "gated/lstm_seq_h.py": ("h", None, 0, None),
    "gated/lstm_seq_i.py": ("dW_hh", "i", LAST, None),
    # the LSTM, CS231n layout (gates i, f, o, g: reported in torch's order and names)
    "gated/lstm_cs231n_a.py": ("d_gates", "i", LAST, "drop-cell-path"),
    "gated/lstm_cs231n_b.py": ("d_gates", "g", LAST, "gate-order-ifog"),
    "gated/lstm_cs231n_c.py": ("dc_prev", None, LAST, None),
    "gated/lstm_cs231n_d.py": ("db_ih_acc", None, LAST, None),
    "gated/lstm_cs231n_e.py": ("d_gates", "i", BEFORE, "forget-cell-carry"),
    "gated/lstm_cs231n_f.py": ("dW_hh_acc", "i", LAST, None),
    # the LSTM, Coursera layout
    "gated/lstm_coursera_a.py": ("dc_prev", None, LAST, None),
    "gated/lstm_coursera_b.py": ("d_gates", "o", LAST, "output-gate-uses-c"),
    "gated/lstm_coursera_c.py": ("db_ih_acc", None, LAST, None),
    "gated/lstm_coursera_d.py": ("d_gates", "i", BEFORE, None),
    "gated/lstm_coursera_e.py": ("d_gates", "i", LAST, "no-gate-sigmoid-derivative"),
    "gated/lstm_coursera_f.py": ("dx", None, LAST, None),
    # the GRU, torch layout
    "gated/gru_step_a.py": ("d_gates", "r", LAST, "reset-before-matmul"),
    "gated/gru_step_b.py": ("d_gates", "r", LAST, "z-swapped"),
    "gated/gru_step_c.py": ("dh_prev", None, LAST, "drop-z-carry"),
    "gated/gru_step_d.py": ("d_gates", "r", LAST, "reset-misses-bias"),
    "gated/gru_step_e.py": ("db_hh_acc", "n", LAST, None),
    "gated/gru_step_f.py": ("d_hn", None, LAST, None),
    "gated/gru_step_g.py": ("dx", None, LAST, None),
    "gated/gru_step_h.py": ("db_ih_acc", "r", LAST, None),
    "gated/gru_step_i.py": ("h", None, 0, None),
    "gated/gru_seq_a.py": ("h", None, 0, None),
    "gated/gru_seq_b.py": ("d_gates", "r", BEFORE, None),
    "gated/gru_seq_c.py": ("d_gates", "r", LAST, "z-swapped"),
    "gated/gru_seq_d.py": ("dx", None, 0, None),
    "gated/gru_seq_e.py": ("db_hh", "n", LAST, None),
    "gated/gru_seq_f.py": ("d_gates", "z", LAST, None),
    "gated/gru_seq_g.py": ("d_hn", None, LAST, None),
}


def _check(name: str) -> tuple[str, int, dict | None, str | None, str | None]:
    """(name, exit code, the headline's first divergence, its zoo bug, its hint), in a worker process."""
    import torch

    from bptt.check.checker import check_file
    torch.set_num_threads(1)           # as the CLI runs it (two workers share the machine's cores)
    r = check_file(FILES / name, [CONFIG])
    ff = r.first_failing()
    if ff is None:
        return name, r.exit_code, None, None, None
    u = ff[1]
    return name, r.exit_code, u.first_divergence, u.diagnosis.get("bug"), u.diagnosis.get("hint")


def test_every_file_of_the_set_is_labelled_and_there_are_enough():
    on_disk = {str(p.relative_to(FILES)) for p in FILES.rglob("*.py")}
    failing_code = {"allocates.py", "loops.py", "raises.py", "no_shape.py"}      # exit 2 or 3: tested elsewhere
    assert on_disk - failing_code == set(CORRECT) | set(MISTAKES)
    assert len(MISTAKES) >= 40 and len(CORRECT) >= 20
    gated = [n for n in MISTAKES if n.startswith("gated/")]
    for prefix in ("gated/lstm_step", "gated/lstm_seq", "gated/lstm_cs231n", "gated/lstm_coursera", "gated/gru_step",
                   "gated/gru_seq"):
        assert sum(n.startswith(prefix) for n in gated) >= 5, prefix
    zoo = {m[3] for m in MISTAKES.values() if m != "state" and m[3]}
    from bptt.cells import BUGS
    for cell in ("lstm", "gru"):
        assert set(BUGS[cell]) - {"none"} <= zoo, cell            # every gated zoo bug is planted in some file


def test_the_checker_meets_the_targets_on_the_set():
    names = CORRECT + list(MISTAKES)
    with ProcessPoolExecutor(2) as ex:
        results = {r[0]: r[1:] for r in ex.map(_check, names)}
    false_alarms = [n for n in CORRECT if results[n][0] != 0]
    assert false_alarms == [], {n: results[n] for n in false_alarms}
    missed = [n for n in MISTAKES if results[n][0] != 1]
    assert missed == [], {n: results[n] for n in missed}
    located, wrong_place = 0, {}
    named, zoo_total, pinned = 0, 0, {}
    for n, want in MISTAKES.items():
        code, fd, bug, hint = results[n]
        if want == "state":
            ok = hint == "state"
            want_bug = None
        else:
            q, gate, t, want_bug = want
            ok = fd == {"quantity": q, "t": t, **({"gate": gate} if gate else {})}
        located += ok
        if not ok:
            wrong_place[n] = (fd, hint)
        if want_bug:
            zoo_total += 1
            named += bug == want_bug
        elif bug is not None:
            pinned[n] = bug
    assert pinned == {}, pinned                                   # no zoo name on a mistake that is not one
    assert located >= 0.9 * len(MISTAKES), wrong_place
    assert named >= 0.9 * zoo_total
    # today every one is located and named; say which regressed
    assert wrong_place == {} and named == zoo_total, (wrong_place, named, zoo_total)
