"""(b) with a planted mistake: dh0 comes back as zeros (zoo: dh0-not-returned)."""
import numpy as np


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    hs, h = [], h0
    for x_t in x:
        h = np.tanh(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        hs.append(h)
    h = np.stack(hs)                                                # (T, B, H)
    return h, (x, h0, h, W_ih, W_hh)


def rnn_backward(dh, cache):
    x, h0, h, W_ih, W_hh = cache
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(W_hh.shape[0])
    carry = np.zeros_like(h0)
    for t in reversed(range(x.shape[0])):
        h_prev = h[t - 1] if t > 0 else h0
        d_pre = (dh[t] + carry) * (1 - h[t] ** 2)
        dx[t] = d_pre @ W_ih
        dW_ih += d_pre.T @ x[t]
        dW_hh += d_pre.T @ h_prev
        db += d_pre.sum(0)
        carry = d_pre @ W_hh
    return dx, np.zeros_like(h0), dW_ih, dW_hh, db, db.copy()
