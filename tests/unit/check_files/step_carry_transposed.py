"""(a) with a planted mistake: the carry uses W_hh transposed (zoo: carry-transposed)."""
import numpy as np


def rnn_step_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    h_t = np.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)     # (B, H)
    return h_t, (x_t, h_prev, h_t, W_ih, W_hh)


def rnn_step_backward(dh_t, cache):
    x_t, h_prev, h_t, W_ih, W_hh = cache
    d_pre = dh_t * (1 - h_t ** 2)                                   # (B, H)
    return d_pre @ W_ih, d_pre @ W_hh.T, d_pre.T @ x_t, d_pre.T @ h_prev, d_pre.sum(0), d_pre.sum(0)
