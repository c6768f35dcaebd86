"""Whole-sequence LSTM (time-major x: (T, B, I)), weights as torch.nn.LSTM keeps them."""
import numpy as np


def _sig(z):
    return 1 / (1 + np.exp(-z))


def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    T, B, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((T, B, H))
    steps = []
    hp, cp = h0, np.zeros_like(h0)
    for t in range(T):
        a = x[t] @ W_ih.T + b_ih + hp @ W_hh.T + b_hh
        ig, fg, gg, og = _sig(a[:, :H]), _sig(a[:, H:2*H]), np.tanh(a[:, 2*H:3*H]), _sig(a[:, 3*H:])
        c = fg * cp + ig * gg
        hn = og * np.tanh(c)
        steps.append((hp, cp, ig, fg, gg, og, c))
        h[t] = hn
        hp, cp = hn, c
    return h, (x, steps, W_ih, W_hh)


def lstm_backward(dh, cache):
    x, steps, W_ih, W_hh = cache
    T, B, I = x.shape
    H = W_hh.shape[1]
    dx = np.zeros_like(x)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db = np.zeros(4 * H)
    dh_next = np.zeros((B, H))
    dc_next = np.zeros((B, H))
    for t in reversed(range(T)):
        hp, cp, ig, fg, gg, og, c = steps[t]
        dh_t = dh[t] + dh_next
        tc = np.tanh(c)
        dc = dc_next + dh_t * og * (1 - tc * tc)
        da = np.concatenate([dc * gg * ig * (1 - ig), dc * cp * fg * (1 - fg), dc * ig * (1 - gg * gg),
                             dh_t * tc * og * (1 - og)], axis=1)
        dx[t] = da @ W_ih
        dW_ih += da.T @ x[t]
        dW_hh += da.T @ hp
        db += da.sum(0)
        dh_next = da @ W_hh
        dc_next = dc * fg
    return dx, dh_next, dc_next, dW_ih, dW_hh, db, db.copy()
