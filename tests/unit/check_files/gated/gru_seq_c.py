import numpy as np


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    """x: (T, B, I) time-major like torch.nn.GRU; returns h (T, B, H) and what backward needs"""
    T = x.shape[0]
    H = h0.shape[1]
    W_ir, W_iz, W_in = W_ih[:H], W_ih[H:2*H], W_ih[2*H:]
    W_hr, W_hz, W_hn = W_hh[:H], W_hh[H:2*H], W_hh[2*H:]
    b_ir, b_iz, b_in = b_ih[:H], b_ih[H:2*H], b_ih[2*H:]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H:2*H], b_hh[2*H:]
    hs = [h0]
    saved = []
    for t in range(T):
        hp = hs[-1]
        r = sigmoid(x[t] @ W_ir.T + b_ir + hp @ W_hr.T + b_hr)
        z = sigmoid(x[t] @ W_iz.T + b_iz + hp @ W_hz.T + b_hz)
        hn = hp @ W_hn.T + b_hn
        n = np.tanh(x[t] @ W_in.T + b_in + r * hn)
        hs.append((1 - z) * n + z * hp)
        saved.append((r, z, n, hn))
    return np.stack(hs[1:]), (x, hs, saved, W_ih, W_hh)


def gru_backward(dh, cache):
    x, hs, saved, W_ih, W_hh = cache
    T, B, I = x.shape
    H = W_hh.shape[1]
    dx = np.zeros((T, B, I))
    dW_ih = np.zeros((3 * H, I))
    dW_hh = np.zeros((3 * H, H))
    db_ih = np.zeros(3 * H)
    db_hh = np.zeros(3 * H)
    carry = np.zeros((B, H))
    for t in range(T - 1, -1, -1):
        r, z, n, hn = saved[t]
        hp = hs[t]
        g = dh[t] + carry
        d_n = g * z * (1 - n * n)
        d_r = d_n * hn * r * (1 - r)
        d_z = g * (n - hp) * z * (1 - z)
        d_hn = d_n * r
        gi = np.hstack([d_r, d_z, d_n])
        gh = np.hstack([d_r, d_z, d_hn])
        dx[t] = gi @ W_ih
        dW_ih += gi.T @ x[t]
        dW_hh += gh.T @ hp
        db_ih += gi.sum(axis=0)
        db_hh += gh.sum(axis=0)
        carry = g * (1 - z) + gh @ W_hh
    return dx, carry, dW_ih, dW_hh, db_ih, db_hh
