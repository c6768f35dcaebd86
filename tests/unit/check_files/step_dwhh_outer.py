import numpy as np


def rnn_step_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_prev + b_hh), batch in rows."""
    pre = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh
    h_t = np.tanh(pre)
    cache = (x_t, h_prev, h_t, W_ih, W_hh)
    return h_t, cache


def rnn_step_backward(dh_t, cache):
    x_t, h_prev, h_t, W_ih, W_hh = cache
    dpre = dh_t * (1.0 - h_t ** 2)            # (B, H)
    dx_t = dpre @ W_ih                        # (B, I)
    dh_prev = dpre @ W_hh                     # (B, H)
    dW_ih = dpre.T @ x_t                      # (H, I)
    dW_hh = h_prev.T @ dpre                   # (H, H)
    db = np.sum(dpre, axis=0)
    return dx_t, dh_prev, dW_ih, dW_hh, db, db
