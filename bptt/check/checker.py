"""Compare a student's outputs with the project's reference: per quantity and step, first divergence, probes that
localise the whole-sequence shapes, and a diagnosis that names the bug-zoo mistake the numbers equal."""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bugs import ZOO
from ..cells import BUGS as CELL_BUGS
from ..cells import CELLS, Cell
from ..compare import FLOOR_FACTOR, REL_TOL, agreement
from ..config import ConfigError, RNNConfig
from ..engine import GRADIENTS, Totals, Trace, run_engine
from ..problem import Problem, draw_problem
from ..reference import torch_rnn_reference, unrolled_reference
from . import explain, gated, shapes
from .child import AGAIN, RAW
from .runner import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    Job,
    RunResult,
    StudentFailure,
    run_student,
)

WHOLE = ("dx", "dh0", "dc0", *GRADIENTS)   # whole-sequence results, compared with the cell's torch module
MAX_PROBES = 8                             # prefixes T = 1..8 and upstream at 8 single steps at most


CHECKED_CELLS = tuple(CELLS)               # the cells whose student shapes the checker knows: all of them
# per-step quantities a step function never returns, read from this step's weight contributions instead (the
# conventions in the README): quantity -> (the contributions that show it, the gate block it is read in: None = each)
SEEN_IN = {"d_gates": (("dW_ih_step", "db_ih_step"), None), "d_hn": (("dW_hh_step", "db_hh_step"), "n")}
STEP_CONTRIBUTIONS = tuple(f"{w}_step" for w in GRADIENTS)


def cell_refused(cfg: RNNConfig) -> str | None:
    """Why a config's cell cannot be checked, naming the flag and what is allowed; None when it can (every cell)."""
    cell = getattr(cfg, "cell", "rnn")
    if cell in CHECKED_CELLS:
        return None
    return f"--cell {cell}: the checker knows the cells {', '.join(CHECKED_CELLS)}"


def default_configs(cell: str = "rnn") -> list[RNNConfig]:
    """The worked example, and one config whose sizes all differ (so that a transposed matrix cannot hide)."""
    return [RNNConfig(cell=cell), RNNConfig(cell=cell, input_size=3, hidden_size=7, seq_len=5, batch_size=2)]


# ----------------------------------------------------------------------------------------------------------------------
# which cell: from the file's names

CELL_PREFERENCE = ("lstm", "gru", "rnn")   # a file with several cells' names is checked as the first of these


def cells_named(path: str | Path) -> list[str]:
    """The cells a file's top-level names speak of (lstm_*, gru_*, rnn_* functions; a class named like LSTMCell), in
    CELL_PREFERENCE order; read from its syntax tree, without running it ([] when it does not parse)."""
    import ast
    try:
        tree = ast.parse(Path(path).read_text(errors="replace"))
    except (SyntaxError, ValueError, OSError):
        return []
    found = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            head = node.name.split("_")[0].lower()
            if head in CELL_PREFERENCE and "_" in node.name:
                found.add(head)
        elif isinstance(node, ast.ClassDef):
            found |= {c for c in CELL_PREFERENCE if c in node.name.lower()}
    return [c for c in CELL_PREFERENCE if c in found]


def choose_cell(path: str | Path, configs: list[RNNConfig] | None, cell: str | None) -> tuple[str, list[str]] | str:
    """(the cell to check, notes), or a usage message when `cell` (said explicitly: --cell, the page's sidebar)
    contradicts the file's names."""
    named = cells_named(path)
    if cell is not None:
        if named and cell not in named:
            return (f"--cell {cell}, but {Path(path).name} names {' and '.join(f'{c}_*' for c in named)} functions "
                    f"and no {cell}_* ones: it looks like {' and '.join(named)} code. Run it with --cell {named[0]} "
                    f"(or without --cell), or name your functions {cell}_step_forward ...")
        return cell, []
    if not named:
        return (configs[0].cell if configs else "rnn"), []
    notes = [f"your file also has {c}_* functions: check them with --cell {c}" for c in named[1:]]
    return named[0], notes


# ----------------------------------------------------------------------------------------------------------------------
# the reference of one problem

class Values:
    """A trace's numbers by (quantity, t), made once each: per step (t: the trace's quantity at t, a step's weight
    contribution `dW_ih_step`, a running sum `dW_ih_acc`) or whole (t None: from `totals` when given, else the
    trace's own dx, dh0, dc0 and full gradients)."""

    def __init__(self, trace: Trace, totals: Totals | None = None):
        self.trace, self.totals = trace, totals
        self.memo: dict[tuple[str, int | None], np.ndarray] = {}
        self.sums: dict[str, np.ndarray] | None = None

    def __call__(self, q: str, t: int | None) -> np.ndarray:
        if (q, t) not in self.memo:
            self.memo[q, t] = self._value(q, t)
        return self.memo[q, t]

    def _value(self, q: str, t: int | None) -> np.ndarray:
        tr = self.trace
        if t is None:
            src = tr if self.totals is None else self.totals
            return src.gradients[q] if q in GRADIENTS else getattr(src, q)
        if q.endswith("_step"):
            return tr.contribution(q[:-5], t)
        if q.endswith("_acc"):
            if self.sums is None:
                self.sums = tr.running_sums()
            return self.sums[q[:-4]][t]
        return getattr(tr, q)[t]


@dataclass
class Reference:
    """The reference numbers of one problem: per step (unrolled autograd), whole (the cell's torch module), and the
    rounding floor's engine and replay (compare.FLOOR_FACTOR)."""
    problem: Problem
    unrolled: Trace
    torch_rnn: Totals
    engine: Trace
    replay: Trace | None

    def __post_init__(self):
        self._ref = Values(self.unrolled, self.torch_rnn)
        self._eng = Values(self.engine)
        self._rep = None if self.replay is None else Values(self.replay)
        self._floors: dict[tuple, float] = {}

    @property
    def cell(self) -> Cell:
        return self.problem.cell

    def value(self, q: str, t: int | None) -> np.ndarray:
        return self._ref(q, t)

    def floor(self, q: str, t: int | None, gate: str | None = None) -> float:
        """FLOOR_FACTOR · max |engine − replay| of q at t (in one gate block): 0 for forward quantities."""
        if self._rep is None or q in {f.name for f in self.cell.forward}:
            return 0.0
        key = (q, t, gate)
        if key not in self._floors:
            a, b = block(self.cell, q, self._eng(q, t), gate), block(self.cell, q, self._rep(q, t), gate)
            with np.errstate(invalid="ignore"):
                d = np.abs(a - b)
            d = d[np.isfinite(d)]
            self._floors[key] = FLOOR_FACTOR * float(d.max()) if d.size else 0.0
        return self._floors[key]


def reference(p: Problem) -> Reference:
    """Run both autograd references and the engine (with its replay on autograd's forward values) on p."""
    unrolled = unrolled_reference(p)
    engine = run_engine(p)
    replay = None
    if p.config.nonlinearity == "tanh":
        replay = run_engine(p, {q.name: unrolled.values[q.name] for q in p.cell.forward})
    return Reference(p, unrolled, torch_rnn_reference(p), engine, replay)


def zero_c0(p: Problem) -> Problem:
    """The problem started from c0 = 0, as the CS231n and Coursera whole-sequence LSTMs start."""
    return p if p.c0 is None else dataclasses.replace(p, c0=np.zeros_like(p.c0))


def starts_from_zero(unit: str) -> bool:
    """Whether a unit's forward starts from c0 = 0 (CS231n's and Coursera's whole-sequence LSTM)."""
    return unit in ("lstm-cs231n-sequence", "lstm-coursera-sequence")


def gates_of(cell: Cell, q: str) -> tuple[str | None, ...]:
    """The gate blocks a quantity's rows split into ((None,): one row): the gated per-step quantities and every
    weight-shaped one of a gated cell."""
    if not cell.gates:
        return (None,)
    weight = q.startswith(("dW", "db"))
    gated = weight or (q in cell.quantities and cell.quantities[q].gated)
    return cell.gates if gated else (None,)


def block(cell: Cell, q: str, a: np.ndarray, gate: str | None) -> np.ndarray:
    """One gate block of an array: the rows of a weight-shaped one, else the last axis (B, G·H)."""
    if gate is None:
        return a
    weight = q.startswith(("dW", "db"))
    sl = cell.gate_slice(gate, (a.shape[0] if weight else a.shape[-1]) // cell.G)
    return a[sl] if weight else a[..., sl]


# ----------------------------------------------------------------------------------------------------------------------
# rows

Getter = Callable[[str, "int | None"], "np.ndarray | None"]


def row_keys(cell: Cell, T: int) -> list[tuple[str, int | None]]:
    """Every (quantity, t) of the cell that can be compared, in the order BPTT computes them (forward t = 0..T-1, then
    backward t = T-1..0: the cell's own quantities, then the running sums), then the whole results."""
    fwd = [q.name for q in cell.forward]
    bwd = [q.name for q in cell.backward] + [f"{w}_acc" for w in GRADIENTS]
    keys: list[tuple[str, int | None]] = [(q, t) for t in range(T) for q in fwd]
    keys += [(q, t) for t in range(T - 1, -1, -1) for q in bwd]
    return keys + [(q, None) for q in ("dx", *cell.initial, *GRADIENTS)]


def compare_rows(get: Getter, problems: list[dict], ref: Reference, impl: str, tol: float = REL_TOL) -> list[dict]:
    """One row per (quantity, t) that the student produced or got wrong; compare.COLUMNS plus a message."""
    T = ref.problem.x.shape[0]
    cell = ref.cell
    msgs: dict[tuple, list[str]] = {}
    for p in problems:
        msgs.setdefault((p["quantity"], p["t"]), []).append(p["message"])
    rows, seen = [], set()
    for q, t in row_keys(cell, T):
        arr = get(q, t)
        msg = msgs.get((q, t), [])
        if arr is None and not msg:
            if cell.gates and t is not None and q in SEEN_IN:
                rows += _seen_in_rows(q, t, get, ref, impl, tol)
            continue
        seen.add((q, t))
        refv = ref.value(q, t)
        if arr is None:                                  # a problem (wrong shape ...) instead of numbers: one row
            rows.append(_row(q, t, impl, math.nan, math.nan, tol, ref.floor(q, t), False, 0, msg))
            continue
        for g in gates_of(cell, q):
            floor = ref.floor(q, t, g)
            mine, theirs = block(cell, q, arr, g), block(cell, q, refv, g)
            a = agreement(mine, theirs, tol, floor)
            notes = list(msg) + _nonfinite_note(q, t, mine, theirs)
            rows.append(_row(q, t, impl, a.max_abs_err, a.max_rel_err, tol, floor, a.passed and not msg,
                             a.nonfinite, notes, g))
    for (q, t), msg in msgs.items():     # problems outside the comparable quantities (a call returned too few values)
        if (q, t) not in seen:
            rows.append(_row(q, t, impl, math.nan, math.nan, tol, 0.0, False, 0, msg))
    return rows


def _seen_in_rows(q: str, t: int, get: Getter, ref: Reference, impl: str, tol: float) -> list[dict]:
    """Rows of a quantity a step function never returns (SEEN_IN), per gate block: a block is wrong when every
    contribution it shows in (this step's dW_ih and db_ih blocks; the GRU's d_hn: the n block of dW_hh and db_hh) is
    wrong; right when one of them is right (then a wrong other one is that gradient's own formula)."""
    sources, only = SEEN_IN[q]
    have = [(e, get(e, t)) for e in sources if get(e, t) is not None]
    if not have:
        return []
    cell = ref.cell
    out = []
    for g in ((only,) if only else cell.gates):
        ags = [(agreement(block(cell, e, a, g), block(cell, e, ref.value(e, t), g), tol, ref.floor(e, t, g)),
                ref.floor(e, t, g)) for e, a in have]
        bad = all(not a.passed for a, _ in ags)
        a, floor = ags[0]
        out.append(_row(q, t, impl, a.max_abs_err, a.max_rel_err, tol, floor, not bad, a.nonfinite, [],
                        None if only else g))
    return out


def _row(q, t, impl, abs_err, rel_err, tol, floor, passed, nonfinite, messages, gate=None) -> dict:
    """One comparison row (compare.COLUMNS plus the messages); per-step rows are against the unrolled reference."""
    reference_name = "unrolled autograd" if t is not None else "the torch module"
    return {"quantity": q, "gate": gate, "t": t, "implementation": impl, "reference": reference_name,
            "max_abs_err": abs_err, "max_rel_err": rel_err, "tol": tol, "floor": floor, "passed": bool(passed),
            "nonfinite": nonfinite, "message": "; ".join(messages)}


def where_of(row: dict) -> dict:
    """A row's place: {"quantity", "t"} and its "gate" when it has one."""
    out = {"quantity": row["quantity"], "t": row["t"]}
    if row.get("gate"):
        out["gate"] = row["gate"]
    return out


def _nonfinite_note(q: str, t: int | None, arr: np.ndarray, refv: np.ndarray) -> list[str]:
    """'dx at t = 1 has 3 NaN and 1 inf entries where the reference is finite', or nothing."""
    bad = ~np.isfinite(arr) & np.isfinite(refv)
    if not bad.any():
        return []
    n_nan, n_inf = int(np.isnan(arr[bad]).sum()), int(np.isinf(arr[bad]).sum())
    what = " and ".join(s for s in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if s)
    at = "" if t is None else f" at t = {t}"
    return [f"{q}{at} has {what} entries where the reference is finite"]


def first_failing(rows: list[dict]) -> dict | None:
    """The first failing row in BPTT order (rows come in that order)."""
    return next((r for r in rows if not r["passed"]), None)


# ----------------------------------------------------------------------------------------------------------------------
# the bug zoo



def _zoo_note(bug: str) -> str:
    """What the mistake is, in the bug registry's (bptt.bugs) own words."""
    note = (getattr(ZOO.get(bug), "note", "") or f"see python -m bptt verify --bug {bug}").rstrip(".")
    return note + (" (t counted from 1 there, as in the app)" if re.search(r"\bt = [0-9T]", note) else "")


class Zoo(Mapping):
    """The engine on one problem with each bug in its cell's zoo, bug -> Values; run on first use (a file that agrees
    never needs them)."""

    def __init__(self, p: Problem):
        self.p = p
        self._runs: dict[str, Values] | None = None

    def _all(self) -> dict[str, Values]:
        if self._runs is None:
            p = self.p
            self._runs = {b: Values(run_engine(dataclasses.replace(p, config=p.config.replace(bug=b))))
                          for b in CELL_BUGS[p.config.cell] if b != "none"}
        return self._runs

    def __getitem__(self, bug: str) -> Values:
        return self._all()[bug]

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def zoo_traces(p: Problem) -> Zoo:
    """The engine on the same problem with each bug in its cell's zoo (whatever bptt.cells holds now), on first use."""
    return Zoo(p)


def zoo_matches(get: Getter, rows: list[dict], zoo: Mapping[str, Values], ref: Reference,
                tol: float = REL_TOL) -> list[str]:
    """The zoo bugs whose engine gives every number the student gave (to the tolerance), when the student fails."""
    if all(r["passed"] for r in rows) or any(r["message"] and "has shape" in r["message"] for r in rows):
        return []
    if any(r["message"] and get(r["quantity"], r["t"]) is None for r in rows):
        return []
    T = ref.problem.x.shape[0]
    keys = [(q, t) for q, t in row_keys(ref.cell, T) if get(q, t) is not None]
    keys += [(q, t) for t in range(T) for q in STEP_CONTRIBUTIONS if get(q, t) is not None]
    if not keys:
        return []
    out = []
    for bug, values in zoo.items():
        if all(agreement(get(q, t), values(q, t), tol, ref.floor(q, t)).passed for q, t in keys):
            out.append(bug)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# probes (whole-sequence shapes return only totals)

def probe_problems(p: Problem) -> list[tuple[str, str, int, Problem]]:
    """(id, kind, n, problem): prefixes of the sequence (kind "prefix", T = n), and the upstream gradient at a single
    step (kind "upstream", only dh_out[n] kept)."""
    T = p.x.shape[0]
    out = []
    for n in range(1, min(T - 1, MAX_PROBES) + 1):
        cfg = p.config.replace(seq_len=n)
        out.append((f"prefix{n}", "prefix", n, dataclasses.replace(p, config=cfg, x=p.x[:n], dh_out=p.dh_out[:n])))
    steps = sorted({0, T - 1, *range(min(T, MAX_PROBES))}) if T > 1 else []
    for s in steps:
        dh = np.zeros_like(p.dh_out)
        dh[s] = p.dh_out[s]
        out.append((f"upstream{s}", "upstream", s, dataclasses.replace(p, dh_out=dh)))
    return out


@dataclass(frozen=True)
class Probe:
    """What one probe showed."""
    kind: str            # "prefix" | "upstream"
    n: int               # the prefix length T, or the step s that alone gets an upstream gradient
    failing: list[str]   # the quantities that differ (empty: all agree)

    def text(self) -> str:
        what = (f"prefix T = {self.n} (steps 0..{self.n - 1})" if self.kind == "prefix"
                else f"upstream gradient only at t = {self.n}")
        verb = " differs" if len(self.failing) == 1 else " differ"
        return f"{what}: " + ("everything agrees" if not self.failing else ", ".join(self.failing) + verb)


def probe_explanation(probes: list[Probe], T: int, cell: Cell | None = None) -> list[str]:
    """Plain words for what the probes together show, in the cell's names."""
    cell = cell or CELLS["rnn"]
    d = "d_gates" if cell.gates else "d_pre"
    carry = " and ".join(cell.carries)
    lines = []
    prefixes = [p for p in probes if p.kind == "prefix"]
    ups = [p for p in probes if p.kind == "upstream"]
    bad_prefix = next((p for p in prefixes if p.failing), None)
    if prefixes:
        if bad_prefix is None:
            lines.append(f"Every prefix up to T = {prefixes[-1].n} agrees: the mistake shows only with the whole "
                         f"sequence (T = {T}), in what reaches the last steps.")
        elif bad_prefix.n == 1:
            lines.append("Even one step alone (T = 1, no carry between steps) differs: the mistake is in a single "
                         f"step's own gradient ({d}, dx, or a weight gradient's formula), not in what flows between "
                         "steps.")
        else:
            lines.append(f"One step alone agrees, but a prefix of T = {bad_prefix.n} steps differs: the mistake is in "
                         f"what passes between steps (the carry {carry}, or how contributions of several steps are "
                         f"added up).")
    if ups:
        ok = [p.n for p in ups if not p.failing]
        bad = [p.n for p in ups if p.failing]
        if bad and ok:
            lines.append(f"An upstream gradient at t = {', '.join(map(str, ok))} alone gives the right result, at "
                         f"t = {', '.join(map(str, bad))} it does not: how the upstream gradient of a step enters "
                         f"(or travels back from it) is wrong.")
        elif bad:
            lines.append("An upstream gradient at any single step gives a wrong result.")
    return lines


# ----------------------------------------------------------------------------------------------------------------------
# the report

@dataclass
class UnitResult:
    """One recognised shape checked on one config."""
    unit: str                       # shapes.UNITS key, or "arrays"
    rows: list[dict]
    first_divergence: dict | None   # {"quantity", "t"} (t 0-based; None if the quantity has no step)
    diagnosis: dict                 # {"bug": zoo name or None, "text": ...}
    zoo: list[str] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)
    values: tuple[np.ndarray, np.ndarray] | None = None   # (yours, reference) at the first divergence
    state: dict | None = None   # {"differs", "first_divergence", "text"}: a second call gave other numbers
    shown: str | None = None    # what `values` are: "dx at t = 2", "dW_ih_step [o] at t = 2" (a step's contribution)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r["passed"] for r in self.rows) and self.state is None


@dataclass
class ConfigResult:
    config: RNNConfig
    units: list[UnitResult]

    @property
    def passed(self) -> bool:
        return all(u.passed for u in self.units)


@dataclass
class CheckReport:
    """Everything `python -m bptt check` and the app's Check page show."""
    source: str                              # the file's name, or "arrays"
    units: list[str]
    configs: list[ConfigResult] = field(default_factory=list)
    failure: StudentFailure | None = None     # exit 3
    usage: str | None = None                  # exit 2: nothing to check
    notes: list[str] = field(default_factory=list)
    output: str = ""
    cell: str = "rnn"                         # the cell checked

    @property
    def passed(self) -> bool:
        return self.failure is None and self.usage is None and all(c.passed for c in self.configs)

    @property
    def api(self) -> str:
        """Which shape(s): "a", "b", "a+b", "c", "d", or "arrays"."""
        if self.units == ["arrays"]:
            return "arrays"
        letters = []
        for u in self.units:
            letter = gated.unit_words(u)[0]
            if letter not in letters:
                letters.append(letter)
        return "+".join(letters)

    def first_failing(self) -> tuple[ConfigResult, UnitResult] | None:
        for c in self.configs:
            for u in c.units:
                if not u.passed:
                    return c, u
        return None

    @property
    def exit_code(self) -> int:
        if self.usage:
            return 2
        if self.failure:
            return 3
        return 0 if self.passed else 1


def diagnose(rows: list[dict], fd: dict | None, zoo: list[str], T: int, nonlinearity: str = "tanh",
             hint: dict | None = None, ref: Reference | None = None, get: Getter | None = None) -> dict:
    """{"bug", "hint", "text"}: the zoo mistake the numbers equal, else a bookkeeping pattern (bookkeeping_hint),
    else what the first divergence usually means."""
    f, fprime = ("tanh", "(1 - h_t²)") if nonlinearity == "tanh" else ("relu", "[a_t > 0]")
    if fd is None:
        return {"bug": None, "hint": None, "text": "Every number agrees with PyTorch autograd."}
    if zoo:
        others = f" (the numbers also equal: {', '.join(zoo[1:])})" if len(zoo) > 1 else ""
        return {"bug": zoo[0], "hint": None, "text": f"Your numbers equal the bug zoo's `{zoo[0]}` on this "
                                                     f"problem{others}: {_zoo_note(zoo[0])}."
                                                     f"{explain.ZOO_MORE.get(zoo[0], '')}"}
    bad = [r for r in rows if not r["passed"]]
    msgs = [r["message"] for r in bad if r["message"]]
    if hint is not None:
        return {"bug": None, "hint": hint["hint"], "text": hint["text"] + (f" ({msgs[0]}.)" if msgs else "")}
    q, t = fd["quantity"], fd["t"]
    if any("has shape" in m or "dtype" in m or "returned" in m for m in msgs):
        text = "Some outputs have the wrong shape, dtype or number: " + msgs[0] + "."
    elif any(r["nonfinite"] for r in bad):
        text = (f"{q} has NaN or inf where the reference is finite: look for a division or log of something that can "
                f"be 0, an np.empty array read before it is written, or an overflow.")
    elif ref is not None and ref.cell.gates:
        hint_ = explain.gated_text(ref, fd, T, get)
        return {"bug": None, "hint": hint_["hint"], "text": hint_["text"]}
    elif q in ("a", "h"):
        text = (f"The forward pass already differs (h at t = {t}): check a_t = W_ih x_t + b_ih + W_hh h_(t-1) + b_hh "
                f"and h_t = {f}(a_t), with W_ih of shape (H, I) as torch.nn.RNN keeps it. Every gradient after it "
                f"is computed from the wrong h.")
    elif q == "dh0":
        text = ("Everything but dh0 agrees: dh0 is what step 0 sends back, d_pre_0 @ W_hh; return it (the carry after "
                "the last backward step).")
    elif q in ("dh_prev",):
        text = (f"The carry sent back from t = {t} differs: dh_prev = d_pre_t @ W_hh (W_hh as it is, (H, H), "
                f"not transposed), with d_pre_t = dh_t * {fprime}.")
    elif q in ("dx", "dh_total", "d_pre") and t == T - 1:
        text = ("The very first backward step (t = T-1) differs, before anything is carried between steps: check "
                f"d_pre = dh_t * {fprime} and dx_t = d_pre @ W_ih.")
    elif q in ("dx", "dh_total", "d_pre", "dh_next"):
        text = (f"The last step agrees but t = {t} does not: what reaches step t from later steps is wrong: "
                f"dh_t = dh_out[t] + (d_pre_(t+1) @ W_hh), the carry added to the step's own upstream gradient.")
    elif q.startswith(("dW", "db")):
        text = (f"dx and dh0 agree, so d_pre is right, but {q.replace('_acc', '')} differs: check dW_ih += "
                f"d_preᵀ x_t, dW_hh += d_preᵀ h_(t-1), db_ih = db_hh = d_pre summed over the batch, and that every "
                f"step's contribution is added up.")
    else:
        text = f"{q} differs from the reference first" + ("" if t is None else f" at t = {t}") + "."
    return {"bug": None, "hint": None, "text": text}


def _gates_behind_dx(rows: list[dict], fd: dict) -> dict:
    """A gated cell's whole-sequence shape: dx_t = d_gates_t W_ih, so when dx first differs at t and a gate's blocks of
    the whole dW_ih and db_ih differ too, d_gates [that gate] at t is the earliest quantity in backward order (as the
    step functions' check says); else dx stays. rows: those of the prefix probe of T - t steps when there is one (its
    whole gradients end at the step that first differs, before the mistake spreads to the other gates)."""
    whole = {(r["quantity"], r["gate"]): r["passed"] for r in rows if r["t"] is None and r["gate"]}
    gates = list(dict.fromkeys(g for _, g in whole))
    for g in gates:
        if whole.get(("dW_ih", g)) is False and whole.get(("db_ih", g)) is False:
            return {"quantity": "d_gates", "t": fd["t"], "gate": g}
    return fd


def _sequence_story(rows: list[dict], prefix_rows: dict[int, list[dict]], probes: list[Probe], fd: dict, T: int,
                    cell: Cell) -> dict:
    """Where a gated cell's whole-sequence shape first goes wrong, told as the step functions' check tells it: at
    t = T - n for the shortest failing prefix of n steps (T: none fails), the earliest quantity in backward order that
    that prefix's whole results show: d_gates [g] (the g blocks of dW_ih and db_ih both differ), the GRU's d_hn (the
    n blocks of dW_hh and db_hh), dx at t, else the first whole result that differs."""
    n = next((p.n for p in probes if p.kind == "prefix" and p.failing), T)
    t = T - n
    if fd["t"] is not None and fd["t"] > t:               # dx differs earlier in backward order than any prefix shows
        return _gates_behind_dx(prefix_rows.get(T - fd["t"], rows), fd) if fd["quantity"] == "dx" else fd
    rs = prefix_rows.get(n, rows)
    whole = {(r["quantity"], r["gate"]): r["passed"] for r in rs if r["t"] is None}
    for g in cell.gates:
        if whole.get(("dW_ih", g)) is False and whole.get(("db_ih", g)) is False:
            return {"quantity": "d_gates", "t": t, "gate": g}
    if "n" in cell.gates and whole.get(("dW_hh", "n")) is False and whole.get(("db_hh", "n")) is False:
        return {"quantity": "d_hn", "t": t}
    if any(r["quantity"] == "dx" and r["t"] == t and not r["passed"] for r in rows):
        return {"quantity": "dx", "t": t}
    first = next((r for r in rs if r["t"] is None and not r["passed"]), None)
    return fd if first is None else {**where_of(first), "t": t}


def check_unit(unit: str, get: Getter, problems: list[dict], ref: Reference, zoo: Mapping[str, Values],
               probe_runs: Callable[[], list[tuple[str, int, Getter, Reference, list[dict]]]] | None = None,
               again: Getter | None = None, again_problems: list[dict] | None = None) -> UnitResult:
    """Compare one unit's outputs on one config; probe (probe_runs: made only when needed), match the zoo, look for a
    bookkeeping pattern and diagnose when it fails; `again` (the second call on the same problem) shows state kept
    between calls."""
    impl = "your arrays" if unit == "arrays" else f"your code ({unit})"
    rows = compare_rows(get, problems, ref, impl)
    T = ref.problem.x.shape[0]
    bad = first_failing(rows)
    fd = None if bad is None else where_of(bad)
    probes: list[Probe] = []
    explanation: list[str] = []
    prefix_rows: dict[int, list[dict]] = {}
    if bad is not None and probe_runs:
        for kind, n, pget, pref, pprobs in probe_runs():
            prow = compare_rows(pget, pprobs, pref, impl)
            probes.append(Probe(kind, n, list(dict.fromkeys(r["quantity"] for r in prow if not r["passed"]))))
            if kind == "prefix":
                prefix_rows[n] = prow
        explanation = probe_explanation(probes, T, ref.cell)
    if bad is not None and bad["t"] is None and bad["quantity"] in ("dh0", "dc0"):
        fd["t"] = 0                                     # dh0 (dc0) is what step 0 sends back
    elif bad is not None and bad["t"] is None and probes:
        first_bad = next((p for p in probes if p.kind == "prefix" and p.failing), None)
        n = first_bad.n if first_bad else T
        fd["t"] = T - n
        explanation.append(f"So the first divergence is put at t = {fd['t']}: a mistake that needs {n} step"
                           f"{'s' if n > 1 else ''} to show, shows {n} step{'s' if n > 1 else ''} into the backward "
                           f"pass, which runs t = {T - 1} down to 0.")
    zoo_hit = zoo_matches(get, rows, zoo, ref) if bad is not None else []
    hint = bookkeeping_hint(get, rows, ref, shapes.layout_of(unit)) if bad is not None and not zoo_hit \
        else None
    if fd is not None and ref.cell.gates and hint is None and probes and fd["quantity"] not in (
            *(q.name for q in ref.cell.forward), *ref.cell.initial):
        fd = _sequence_story(rows, prefix_rows, probes, fd, T, ref.cell)
    elif fd is not None and ref.cell.gates and fd["quantity"] == "dx" and fd["t"] is not None and hint is None:
        fd = _gates_behind_dx(rows, fd)
    values, shown = None, None
    if bad is not None and get(bad["quantity"], bad["t"]) is not None:
        values = (get(bad["quantity"], bad["t"]), ref.value(bad["quantity"], bad["t"]))
        shown = bad["quantity"] + ("" if bad["t"] is None else f" at t = {bad['t']}")
    elif bad is not None and bad["quantity"] in SEEN_IN and bad["t"] is not None:   # seen in a step's contribution
        e = SEEN_IN[bad["quantity"]][0][0]
        g = bad["gate"] or SEEN_IN[bad["quantity"]][1]
        if get(e, bad["t"]) is not None:
            values = (block(ref.cell, e, get(e, bad["t"]), g), block(ref.cell, e, ref.value(e, bad["t"]), g))
            shown = f"{e} [{g}] at t = {bad['t']}"
    diagnosis = diagnose(rows, fd, zoo_hit, T, ref.problem.config.nonlinearity, hint, ref, get)
    state = None
    if again is not None:
        differs = state_differences(get, again, T, ref.cell)
        if differs:
            rows2 = compare_rows(again, again_problems or [], ref, impl + ", second call")
            bad2 = first_failing(rows2)
            state = {"differs": differs, "first_divergence": None if bad2 is None else where_of(bad2),
                     "text": state_text(unit, differs)}
            if fd is None:
                fd = state["first_divergence"] or {"quantity": differs[0].split(" ")[0], "t": None}
                diagnosis = {"bug": None, "hint": "state", "text": state["text"]}
                values = None
            else:
                diagnosis = dict(diagnosis, text=diagnosis["text"] + " Besides: " + state["text"])
    return UnitResult(unit, rows, fd, diagnosis, zoo_hit, probes, explanation, values, state, shown)


# ----------------------------------------------------------------------------------------------------------------------
# state kept between calls

STATE_TEXT = ("your second call gives different gradients from your first: something keeps state between calls (a "
              "buffer that is not zeroed, a list shared by every instance)")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Two calls' outputs are the same (deterministic code gives the same bits; allow the last one)."""
    if a.shape != b.shape:
        return False
    if np.array_equal(a, b, equal_nan=True):
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.max(np.abs(a - b)) <= 1e-12 * max(float(np.max(np.abs(a))), 1e-300))


def state_differences(first: Getter, second: Getter, T: int, cell: Cell | None = None) -> list[str]:
    """What the second call on the same problem gives differently from the first: 'dx from t = 1', 'dW_hh', ..."""
    out: dict[str, list] = {}
    for q, t in row_keys(cell or CELLS["rnn"], T):
        a, b = first(q, t), second(q, t)
        if a is None and b is None:
            continue
        if a is None or b is None or not _same(a, b):
            out.setdefault(q, []).append(t)
    return [q if ts == [None] else f"{q} from t = {ts[0]}" for q, ts in out.items()]


def state_text(unit: str, differs: list[str]) -> str:
    """The plain words for state kept between calls, naming what differs."""
    how = ("A second, fresh instance of your class on the same problem" if unit == "class" else
           "Called a second time on the same problem, your functions")
    shown = ", ".join(differs[:6]) + (f" and {len(differs) - 6} more" if len(differs) > 6 else "")
    return (f"{STATE_TEXT[0].upper()}{STATE_TEXT[1:]}. {how} give{'s' if unit == 'class' else ''} other {shown} than "
            f"the first call. "
            f"Start every backward pass from zero: make the gradient buffers and lists inside the function or in "
            f"__init__ (self.dx_list = []), never at module level or as class attributes.")


# ----------------------------------------------------------------------------------------------------------------------
# bookkeeping hints: the numbers are right but in the wrong place, order or scale

def _close(a: np.ndarray | None, b: np.ndarray) -> bool:
    if a is None or a.shape != b.shape or not np.all(np.isfinite(a)):
        return False
    return bool(np.max(np.abs(a - b), initial=0.0) <= 1e-9 * max(float(np.max(np.abs(b), initial=0.0)), 1e-300))


def _formulas(cell: Cell, layout: str) -> dict[str, tuple[str, str, str]]:
    """shapes.FORMULAS in the cell's own names: the gated cells' gradients come from d_gates (CS231n: da); Coursera's
    LSTM has a gradient per gate (dWf ...), so only its layout-free hints apply."""
    if not cell.gates:
        return shapes.FORMULAS[layout]
    if layout == "coursera":
        return {}
    return {w: (n, r.replace("d_pre", "d_gates").replace("dtanh", "da"), tr.replace("d_pre", "d_gates").replace(
        "dtanh", "da")) for w, (n, r, tr) in shapes.FORMULAS[layout].items()}


def bookkeeping_hint(get: Getter, rows: list[dict], ref: Reference, layout: str = "torch") -> dict | None:
    """{"hint", "quantity", "t", "text"} when the first failing row shows a bookkeeping pattern (a skipped step, dx in
    reverse time order, a transposed total, a batch mean, a sum over the wrong axis); None otherwise. The text quotes
    the layout's own names and axes (shapes.FORMULAS)."""
    p = ref.problem
    T, B = p.x.shape[0], p.x.shape[1]
    bad = first_failing(rows)
    if bad is None:
        return None
    q, t = bad["quantity"], bad["t"]
    base = q.replace("_acc", "")
    mine, raw, refv = get(q, t), get(q + RAW, t), ref.value(q, t)
    at = "" if t is None else f" at t = {t}"
    if q == "dx" and t is not None and mine is not None and not np.any(mine) and np.any(refv):
        return {"hint": "skipped-step", "quantity": q, "t": t, "text":
                f"dx{at} is exactly zero while the reference's is not: did your loop skip t = {t}? The backward loop "
                f"must visit every step, t = T-1 down to 0 (for t in reversed(range(T))); range(T-1, 0, -1) stops "
                f"before t = 0 and range(T-2, -1, -1) starts after t = T-1."}
    if q == "dx":
        whole, refw = get("dx", None), ref.value("dx", None)
        if T > 1 and _close(whole, refw[::-1]) and not _close(refw, refw[::-1]):
            return {"hint": "dx-reversed", "quantity": q, "t": t, "text":
                    "Your dx holds the right numbers in reverse time order: your dx at t is the reference's at "
                    "T-1-t. The backward pass meets t = T-1 first, so insert each step's dx at the front "
                    "(dx_list.insert(0, dx_t)) instead of appending it, or write it to dx[t], or reverse the list "
                    "before stacking it."}
    formulas = _formulas(ref.cell, layout)
    if base not in formulas:
        return None
    name, right, transposed = formulas[base]
    yours = f"Your {name}{at}" + ("" if name == base else f" ({base} in {ref.cell.torch_name}'s layout)")
    cand = mine if mine is not None else raw
    if transposed and cand is not None and _close(cand, refv.T) and not _close(refv.T, refv):
        return {"hint": "transposed", "quantity": q, "t": t, "text":
                f"{yours} equals the reference's transpose: it is {right}, not {transposed}."}
    if base.startswith("db"):
        if B > 1 and mine is not None and _close(mine * B, refv):
            return {"hint": "batch-mean", "quantity": q, "t": t, "text":
                    f"{yours} equals the reference's divided by B = {B}: you took the mean over the batch. The loss "
                    f"is a sum over the batch, so its gradient sums too: {right}."}
        d = ref.unrolled.d_pre if not ref.cell.gates else ref.unrolled.d_gates
        wrong = d[0 if t is None else t:].sum(axis=(0, 2))                        # (B,): summed over H instead
        if cand is not None and cand.size == B and _close(cand.reshape(-1), wrong):
            return {"hint": "wrong-axis", "quantity": q, "t": t, "text":
                    f"{yours} is summed over the wrong axis: it has one entry per batch row (B = {B}), the sum over "
                    f"the hidden units. Sum over the batch, {shapes.BATCH_AXIS[layout]}, which keeps H entries: "
                    f"{right}."}
    return None


def check_file(path: str | Path, configs: list[RNNConfig] | None = None, timeout: float = DEFAULT_TIMEOUT,
               memory_mb: int = DEFAULT_MEMORY_MB, cell: str | None = None) -> CheckReport:
    """Run the student's file on every config (and its probes) in a child process and compare everything.

    The cell comes from `cell` when said explicitly (--cell, the page's sidebar; a file whose names speak only of
    other cells is a usage error), else from the file's names (cells_named), else from the configs (rnn)."""
    path = Path(path)
    if not path.is_file():
        return CheckReport(str(path), [], usage=f"no such file: {str(path)!r}")
    chosen = choose_cell(path, configs, cell)
    if isinstance(chosen, str):
        return CheckReport(path.name, [], usage=chosen)
    cell_name, cell_notes = chosen
    try:
        configs = [c.replace(cell=cell_name) for c in configs] if configs else default_configs(cell_name)
    except ConfigError as err:
        return CheckReport(path.name, [], usage=f"{path.name} is {cell_name} code: {err}")
    refused = next((m for m in map(cell_refused, configs) if m), None)
    if refused:
        return CheckReport(path.name, [], usage=refused)
    problems = [draw_problem(c) for c in configs]
    jobs, probe_index = [], {}
    for i, p in enumerate(problems):
        jobs.append(Job(f"c{i}", p))
        for pid, kind, n, pp in probe_problems(p):
            jobs.append(Job(f"c{i}{pid}", pp, probe=True))
            probe_index.setdefault(i, []).append((f"c{i}{pid}", kind, n, pp))
    run: RunResult = run_student(path, jobs, timeout, memory_mb)
    report = CheckReport(path.name, run.units, notes=cell_notes + run.notes, output=run.output, cell=cell_name)
    if run.failure:
        report.failure = run.failure
        return report
    if not run.units:
        report.usage = f"{path.name}: no recognisable shape. Expected {EXPECTED[cell_name]}" + (
            "; " + "; ".join(run.notes) if run.notes else "")
        return report
    refs: dict[tuple[str, bool], Reference] = {}
    for i, (cfg, p) in enumerate(zip(configs, problems)):
        own: dict[bool, tuple[Reference, Zoo]] = {}
        units = []
        for unit in run.units:
            zero = starts_from_zero(unit)
            if zero not in own:
                pz = zero_c0(p) if zero else p
                own[zero] = (reference(pz), zoo_traces(pz))
            ref, zoo = own[zero]
            get = _getter(run, unit, f"c{i}")
            probs = [q for q in run.problems if q["unit"] == unit and q["job"] == f"c{i}"]
            probe_runs = _probe_runs(run, unit, probe_index.get(i, []), refs, zero) if unit.endswith("sequence") \
                else None
            again = [q for q in run.problems if q["unit"] == unit and q["job"] == f"c{i}{AGAIN}"]
            units.append(check_unit(unit, get, probs, ref, zoo, probe_runs, _getter(run, unit, f"c{i}{AGAIN}"),
                                    again))
        report.configs.append(ConfigResult(cfg, units))
    return report


EXPECTED = {  # what a file of each cell may hold, for the "no recognisable shape" message
    "rnn": "rnn_step_forward + rnn_step_backward, rnn_forward + rnn_backward (torch.nn.RNN, CS231n or Coursera "
           "layout), rnn_cell_forward + rnn_cell_backward (Coursera), or a class built as Cls(weight_ih, weight_hh, "
           "bias_ih, bias_hh) with a call and backward(dh_t)",
    "lstm": "lstm_step_forward + lstm_step_backward (torch.nn.LSTM or CS231n layout), lstm_forward + lstm_backward "
            "(torch.nn.LSTM, CS231n or Coursera layout), or lstm_cell_forward + lstm_cell_backward (Coursera)",
    "gru": "gru_step_forward + gru_step_backward, or gru_forward + gru_backward (torch.nn.GRU layout)",
}


def _probe_runs(run: RunResult, unit: str, index: list, refs: dict, zero: bool = False) -> Callable[[], list]:
    """The probes of one unit, with their references computed on first use (shared by the units of a file; zero: the
    unit starts from c0 = 0)."""
    def make() -> list:
        out = []
        for jid, kind, n, pp in index:
            if (jid, zero) not in refs:
                refs[jid, zero] = reference(zero_c0(pp) if zero else pp)
            probs = [q for q in run.problems if q["unit"] == unit and q["job"] == jid]
            out.append((kind, n, _getter(run, unit, jid), refs[jid, zero], probs))
        return out
    return make


def _getter(run: RunResult, unit: str, job: str) -> Getter:
    return lambda q, t: run.get(unit, job, q, t)
