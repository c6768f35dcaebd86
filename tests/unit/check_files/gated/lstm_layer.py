# my LSTM layer (homework 4): step functions and the whole sequence, torch.nn.LSTM conventions
import numpy as np

GATES = ["i", "f", "g", "o"]


def act(name, v):
    return np.tanh(v) if name == "g" else 1.0 / (1.0 + np.exp(-v))


def lstm_step_forward(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    H = h_prev.shape[-1]
    pre = np.einsum("bi,gi->bg", x_t, W_ih) + np.einsum("bh,gh->bg", h_prev, W_hh) + b_ih + b_hh
    a = {k: act(k, pre[:, n * H:(n + 1) * H]) for n, k in enumerate(GATES)}
    c_t = a["f"] * c_prev + a["i"] * a["g"]
    h_t = a["o"] * np.tanh(c_t)
    return h_t, c_t, {"x": x_t, "h": h_prev, "c": c_prev, "c_t": c_t, "a": a, "W_ih": W_ih, "W_hh": W_hh}


def lstm_step_backward(dh_t, dc_t, cache):
    a, c_prev, c_t = cache["a"], cache["c"], cache["c_t"]
    th = np.tanh(c_t)
    dc = dc_t + dh_t * a["o"] * (1.0 - th ** 2)
    local = {"i": dc * a["g"], "f": dc * c_prev, "g": dc * a["i"], "o": dh_t * th}
    grads = []
    for k in GATES:
        deriv = 1.0 - a[k] ** 2 if k == "g" else a[k] * (1.0 - a[k])
        grads.append(local[k] * deriv)
    dz = np.concatenate(grads, axis=1)
    dW_ih = np.einsum("bg,bi->gi", dz, cache["x"])
    dW_hh = np.einsum("bg,bh->gh", dz, cache["h"])
    db = dz.sum(axis=0)
    return dz @ cache["W_ih"], dz @ cache["W_hh"], dc * a["f"], dW_ih, dW_hh, db, db.copy()


def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    hs, cs, caches = [], [], []
    h, c = h0, c0
    for x_t in x:
        h, c, cache = lstm_step_forward(x_t, h, c, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
        cs.append(c)
        caches.append(cache)
    return np.stack(hs), np.stack(cs), caches


def lstm_backward(dh, caches):
    T = len(caches)
    dx = [None] * T
    dh_next = np.zeros_like(dh[0])
    dc_next = np.zeros_like(dh[0])
    total = None
    for t in range(T - 1, -1, -1):
        dx[t], dh_next, dc_next, *g = lstm_step_backward(dh[t] + dh_next, dc_next, caches[t])
        total = g if total is None else [a + b for a, b in zip(total, g)]
    return (np.stack(dx), dh_next, dc_next, *total)
