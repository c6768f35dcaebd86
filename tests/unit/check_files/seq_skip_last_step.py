"""Homework 3, part 2: rnn_forward / rnn_backward (torch.nn.RNN conventions, x is (T, B, I))."""
import numpy as np


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    T = x.shape[0]
    H = W_hh.shape[0]
    h = np.zeros((T, x.shape[1], H))
    prev = h0
    for t in range(T):
        prev = np.tanh(x[t] @ W_ih.T + b_ih + prev @ W_hh.T + b_hh)
        h[t] = prev
    return h, (x, h0, h, W_ih, W_hh)


def rnn_backward(dh, cache):
    x, h0, h, W_ih, W_hh = cache
    T = x.shape[0]
    dx = np.zeros_like(x)
    dW_ih = np.zeros_like(W_ih)
    dW_hh = np.zeros_like(W_hh)
    db_ih = np.zeros(W_hh.shape[0])
    db_hh = np.zeros(W_hh.shape[0])
    dh_next = np.zeros_like(h0)
    # walk back through time
    for t in reversed(range(T - 1)):
        h_prev = h[t - 1] if t > 0 else h0
        dtanh = (dh[t] + dh_next) * (1 - h[t] ** 2)
        dx[t] = dtanh @ W_ih
        dW_ih += dtanh.T @ x[t]
        dW_hh += dtanh.T @ h_prev
        db_ih += dtanh.sum(axis=0)
        db_hh += dtanh.sum(axis=0)
        dh_next = dtanh @ W_hh
    return dx, dh_next, dW_ih, dW_hh, db_ih, db_hh
