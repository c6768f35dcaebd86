"""RNNConfig: the validated, frozen description of one BPTT problem (any recurrent cell: an LSTM is an RNN too),
its bounds and presets."""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cells import ALL_BUGS, CELLS
from .cells import BUGS as CELL_BUGS
from .cells.gru import ResetBeforeMatmul

# ----------------------------------------------------------------------------------------------------------------------
# bounds

NONLINEARITIES = ("tanh", "relu")
UPSTREAMS = ("all", "last")
BUGS = ALL_BUGS           # "none" and every cell's bug zoo (each cell module defines its bugs; CELL_BUGS per cell)
# the per-step gradient history holds seq_len * hidden * (hidden + input) numbers; 64 MiB of float64 at most
HISTORY_BUDGET = 8_388_608


@dataclass(frozen=True)
class Field:
    """How one config field is bounded, parsed and explained."""
    name: str
    kind: type                   # int, float or str
    lo: float | None = None      # inclusive bounds for numbers
    hi: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def allowed(self) -> str:
        """The allowed values, in words, for error messages."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.kind is int else "a finite number"
        return f"{kind} in {_fmt(self.lo)}..{_fmt(self.hi)}"


def _fmt(v: float | None) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("cell", str, choices=tuple(CELLS), help="the recurrent cell: torch.nn.RNN, torch.nn.LSTM or torch.nn.GRU"),
    Field("input_size", int, 1, 256, help="I, the size of each input x_t"),
    Field("hidden_size", int, 1, 256, help="H, the size of the hidden state h_t"),
    Field("seq_len", int, 1, 200, help="T, the number of timesteps"),
    Field("batch_size", int, 1, 64, help="B, the number of sequences processed together"),
    Field("seed", int, 0, 2**32 - 1, help="seeds NumPy and PyTorch, in the worked example's order"),
    Field("nonlinearity", str, choices=NONLINEARITIES, help="f in h_t = f(a_t) (the vanilla RNN only)"),
    Field("upstream", str, choices=UPSTREAMS, help="where dL/dh_t arrives: at every output, or only at the last"),
    Field("hh_scale", float, 0.05, 10.0, help="multiplies W_hh after initialisation (vanishing < 1 < exploding)"),
    Field("truncate", int, 0, 200, help="0 = full BPTT; K >= 1 detaches h every K steps (truncated BPTT)"),
    Field("bug", str, choices=BUGS, help="a classic mistake the NumPy engine makes on purpose"),
)}


class ConfigError(ValueError):
    """A config value out of its bounds; the message names the field, the value and what is allowed."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


# ----------------------------------------------------------------------------------------------------------------------
# the config

@dataclass(frozen=True)
class RNNConfig:
    """One BPTT problem; validated on construction."""
    cell: str = "rnn"            # "rnn" (torch.nn.RNN) | "lstm" (torch.nn.LSTM) | "gru" (torch.nn.GRU)
    input_size: int = 4          # I
    hidden_size: int = 5         # H
    seq_len: int = 3             # T
    batch_size: int = 3          # B
    seed: int = 123              # seeds np.random then torch, as the worked example did
    nonlinearity: str = "tanh"   # "tanh" | "relu" (rnn only; the gated cells' are fixed)
    upstream: str = "all"        # "all": dL/dh_t at every t; "last": only at t = T-1
    hh_scale: float = 1.0        # W_hh *= hh_scale after initialisation
    truncate: int = 0            # 0: full BPTT; K: detach h at t = K, 2K, ...
    bug: str = "none"            # a mistake the NumPy engine makes on purpose (one of CELL_BUGS[cell])

    def __post_init__(self) -> None:
        for name, field in FIELDS.items():
            value = getattr(self, name)
            checked = check_value(field, value)
            if checked is not value:
                object.__setattr__(self, name, checked)
        if self.cell != "rnn" and self.nonlinearity != "tanh":
            raise ConfigError("nonlinearity", f"nonlinearity applies to the vanilla RNN only: the {self.cell} has "
                                              f"its own (σ and tanh), so it must be 'tanh', got {self.nonlinearity!r}")
        if self.bug not in CELL_BUGS[self.cell]:
            raise ConfigError("bug", f"bug {self.bug!r} is not a {self.cell} bug; the {self.cell} bugs are: "
                                     f"{', '.join(CELL_BUGS[self.cell])}")
        history = self.seq_len * self.hidden_size * (self.hidden_size + self.input_size)
        if history > HISTORY_BUDGET:
            raise ConfigError(
                "seq_len",
                f"seq_len * hidden_size * (hidden_size + input_size) = {history:,} numbers of per-step gradient "
                f"history is over the budget of {HISTORY_BUDGET:,} (64 MiB of float64): "
                f"shrink seq_len, hidden_size or input_size",
            )

    # -- conversions ---------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RNNConfig:
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise ConfigError(unknown[0], f"unknown config field {unknown[0]!r}; known: {', '.join(FIELDS)}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> RNNConfig:
        return dataclasses.replace(self, **changes)

    def differs_from_default(self) -> dict[str, Any]:
        """The fields whose values are not the defaults."""
        d = RNNConfig()
        return {k: v for k, v in self.to_dict().items() if getattr(d, k) != v}


def check_value(field: Field, value: Any) -> Any:
    """The value, normalised to the field's type, or ConfigError naming the field and what is allowed."""
    bad = ConfigError(field.name, f"{field.name} must be {field.allowed()}, got {value!r}")
    if field.kind is str:
        if not isinstance(value, str) or value not in field.choices:
            raise bad
        return value
    if isinstance(value, bool):
        raise bad
    if field.kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, np.integer):  # numpy integers are welcome
            value = int(value)
        if not isinstance(value, int):
            raise bad
    else:
        if isinstance(value, int):
            value = float(value)
        if isinstance(value, (np.floating, np.integer)):  # numpy numbers are welcome
            value = float(value)
        if not isinstance(value, float) or not math.isfinite(value):
            raise bad
    if not (field.lo <= value <= field.hi):
        raise bad
    return value


def parse_value(name: str, raw: str) -> Any:
    """Parse one field from text (a URL or CLI value); ConfigError names the field and what is allowed."""
    field = FIELDS.get(name)
    if field is None:
        raise ConfigError(name, f"unknown config field {name!r}; known: {', '.join(FIELDS)}")
    text = str(raw).strip()
    bad = ConfigError(name, f"{name} must be {field.allowed()}, got {raw!r}")
    if field.kind is str:
        return check_value(field, text) if text in field.choices else _raise(bad)
    try:
        value: Any = int(text, 10) if field.kind is int else float(text)
    except ValueError:
        raise bad from None
    try:
        return check_value(field, value)
    except ConfigError:
        raise bad from None


def _raise(err: Exception):
    raise err


# ----------------------------------------------------------------------------------------------------------------------
# presets

PRESETS: dict[str, dict[str, Any]] = {
    "Worked example": {},
    "Vanishing gradients": dict(hidden_size=16, seq_len=40, batch_size=2, input_size=4, hh_scale=0.5, upstream="last"),
    "Exploding gradients": dict(hidden_size=16, seq_len=40, batch_size=2, input_size=4, hh_scale=3.0, upstream="last",
                                nonlinearity="relu"),
    "Long sequence": dict(hidden_size=32, seq_len=100, batch_size=4, input_size=8),
    "LSTM: the cell state carries the gradient": dict(cell="lstm", hidden_size=16, seq_len=50, batch_size=2,
                                                      input_size=4, upstream="last"),
    "GRU: PyTorch's reset gate": dict(cell="gru", input_size=3, hidden_size=4, seq_len=5, batch_size=2),
}
PRESET_NOTES: dict[str, str] = {
    "Worked example": "The course exercise's numbers: I=4, H=5, T=3, B=3, seed 123.",
    "Vanishing gradients": "W_hh scaled by 0.5 and a gradient only at the last output: "
                           "dL/dh_t shrinks geometrically as it travels back in time.",
    "Exploding gradients": "relu with W_hh scaled by 3: each step back multiplies the gradient by more than one, "
                           "so dL/dh_t grows geometrically towards t = 1.",
    "Long sequence": "T = 100 with the default scale: watch how far back the gradient still carries.",
    "LSTM: the cell state carries the gradient": "T = 50, a gradient only at the last step: along the cell path "
                                                 "c_t → c_(t−1) the gradient is multiplied only by the forget gate "
                                                 "f_t (no W_hh, no tanh′), so it reaches further back than the "
                                                 "vanilla RNN's on the same problem.",
    "GRU: PyTorch's reset gate": "PyTorch's GRU applies r after the W_hn product, r ⊙ (W_hn h + b_hn); the paper's "
                                 "puts it inside, W_hn (r ⊙ h). The Derivation page sets the two side by side; pick "
                                 f"the bug {ResetBeforeMatmul.name} to run the paper's backward against PyTorch's "
                                 "forward and see d_gates [r] fail first.",
}


def preset(name: str) -> RNNConfig:
    """The config a preset names (all other fields at their defaults)."""
    return RNNConfig(**PRESETS[name])
