# GRU layer: step functions + the loop over time. PyTorch convention (r multiplies (W_hn h + b_hn)).
import numpy as np


def sigmoid(x):
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1 + e)
    return out


def gru_step_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    H = h_prev.shape[1]
    gi = x_t @ W_ih.T + b_ih
    gh = h_prev @ W_hh.T + b_hh
    rz = sigmoid(gi[:, :2 * H] + gh[:, :2 * H])
    r, z = rz[:, :H], rz[:, H:]
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    h_t = (1 - z) * n + z * h_prev
    cache = {"x": x_t, "h_prev": h_prev, "r": r, "z": z, "n": n, "ghn": gh[:, 2 * H:], "W_ih": W_ih, "W_hh": W_hh}
    return h_t, cache


def gru_step_backward(dh_t, cache):
    c = cache
    dpre_n = dh_t * (1 - c["z"]) * (1 - c["n"] ** 2)
    dpre_z = dh_t * (c["h_prev"] - c["n"]) * c["z"] * (1 - c["z"])
    dpre_r = dpre_n * c["ghn"] * c["r"] * (1 - c["r"])
    dgi = np.hstack([dpre_r, dpre_z, dpre_n])
    dgh = np.hstack([dpre_r, dpre_z, dpre_n * c["r"]])
    dx_t = dgi @ c["W_ih"]
    dh_prev = dh_t * c["z"] + dgh @ c["W_hh"]
    return dx_t, dh_prev, dgi.T @ c["x"], dgh.T @ c["h_prev"], dgi.sum(0), dgh.sum(0)


def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    h, caches, out = h0, [], []
    for t in range(x.shape[0]):
        h, cache = gru_step_forward(x[t], h, W_ih, W_hh, b_ih, b_hh)
        out.append(h)
        caches.append(cache)
    return np.stack(out), caches


def gru_backward(dh, caches):
    T = len(caches)
    dx = np.zeros((T, *caches[0]["x"].shape))
    dW_ih = np.zeros_like(caches[0]["W_ih"])
    dW_hh = np.zeros_like(caches[0]["W_hh"])
    db_ih = np.zeros(dW_ih.shape[0])
    db_hh = np.zeros(dW_hh.shape[0])
    carry = np.zeros_like(dh[0])
    for t in reversed(range(T)):
        dx[t], carry, a, b, c, d = gru_step_backward(dh[t] + carry, caches[t])
        dW_ih += a
        dW_hh += b
        db_ih += c
        db_hh += d
    return dx, carry, dW_ih, dW_hh, db_ih, db_hh
