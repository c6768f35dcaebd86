"""The weights and data of one config, drawn in the worked example's order."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .cells import Cell, cell_of
from .config import RNNConfig

# the draw seeds the global numpy and torch generators, as the worked example did; one draw at a time per process
_DRAW_LOCK = threading.Lock()


@dataclass(frozen=True)
class Problem:
    """Everything the forward and backward passes start from; float64 numpy arrays, time-major."""
    config: RNNConfig
    x: np.ndarray       # (T, B, I) inputs
    h0: np.ndarray      # (B, H) initial hidden state
    c0: np.ndarray | None  # (B, H) initial cell state (the LSTM's; None for the other cells)
    dh_out: np.ndarray  # (T, B, H) upstream gradient dL/dh_t from the outputs (L = sum(dh_out * h))
    W_ih: np.ndarray    # (G·H, I), G gate blocks (1 for the vanilla RNN, 4 for the LSTM, 3 for the GRU)
    W_hh: np.ndarray    # (G·H, H), already multiplied by hh_scale
    b_ih: np.ndarray    # (G·H,)
    b_hh: np.ndarray    # (G·H,)

    @property
    def cell(self) -> Cell:
        return cell_of(self.config.cell)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        return {"W_ih": self.W_ih, "W_hh": self.W_hh, "b_ih": self.b_ih, "b_hh": self.b_hh}


def make_torch_rnn(config: RNNConfig):
    """A float64 torch.nn.RNN, LSTM or GRU (the config's cell) with its sizes (weights: what the generator gives)."""
    return cell_of(config.cell).torch_module(config.input_size, config.hidden_size, config.nonlinearity)


def draw_problem(config: RNNConfig) -> Problem:
    """Seed numpy then torch, build the cell's torch module (float32 init, then .double()), then draw x, h0 (c0 for
    the LSTM, right after h0) and dh with numpy."""
    import torch
    T, B, I, H = config.seq_len, config.batch_size, config.input_size, config.hidden_size
    with _DRAW_LOCK:
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        rnn = make_torch_rnn(config)
        W_ih, W_hh, b_ih, b_hh = (p.detach().numpy().copy() for p in
                                  (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0))
        x = np.random.random((T, B, I))           # (T, B, I)
        h0 = np.random.random((1, B, H))[0]       # (B, H)
        c0 = np.random.random((1, B, H))[0] if "c" in cell_of(config.cell).states else None   # (B, H)
        dh_out = np.random.random((T, B, H))      # (T, B, H)
    W_hh *= config.hh_scale
    if config.upstream == "last":
        dh_out[:-1] = 0.0
    return Problem(config, x, h0, c0, dh_out, W_ih, W_hh, b_ih, b_hh)
