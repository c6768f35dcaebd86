import numpy as np


def sigmoid(x):
    return 1. / (1. + np.exp(-x))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    a = x @ Wx + prev_h @ Wh + b
    ai, af, ao, ag = np.split(a, 4, axis=1)
    i, f, o, g = sigmoid(ai), sigmoid(af), sigmoid(ao), np.tanh(ag)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, i, f, o, g, next_c, Wx, Wh)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, i, f, o, g, next_c, Wx, Wh = cache
    tc = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tc * tc)
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tc * o * (1 - o),
                         dc * i * (1 - g * g)], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    h = np.empty((N, T, h0.shape[1]))
    c = np.zeros_like(h0)
    prev = h0
    cache = []
    for t in range(T):
        prev, c, ch = lstm_step_forward(x[:, t], prev, c, Wx, Wh, b)
        h[:, t] = prev
        cache.append(ch)
    return h, cache


def lstm_backward(dh, cache):
    N, T, H = dh.shape
    dx = np.empty((N, T, cache[0][0].shape[1]))
    dWx = dWh = db = 0
    dprev_h = np.zeros((N, H))
    dprev_c = np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        dx[:, t], dprev_h, dprev_c, a, b_, c_ = lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])
        dWx = dWx + a
        dWh = dWh + b_
        db = db + c_
    return dx, dprev_h, dWx, dWh, db
