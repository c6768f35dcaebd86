import numpy as np


def sigma(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def gru_step_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    W_ir, W_iz, W_in = np.split(W_ih, 3)
    W_hr, W_hz, W_hn = np.split(W_hh, 3)
    b_ir, b_iz, b_in = np.split(b_ih, 3)
    b_hr, b_hz, b_hn = np.split(b_hh, 3)
    r = sigma(x_t @ W_ir.T + b_ir + h_prev @ W_hr.T + b_hr)
    z = sigma(x_t @ W_iz.T + b_iz + h_prev @ W_hz.T + b_hz)
    a_n = h_prev @ W_hn.T + b_hn
    n = np.tanh(x_t @ W_in.T + b_in + r * a_n)
    h = (1.0 - z) * n + z * h_prev
    return h, dict(x=x_t, hp=h_prev, r=r, z=z, n=n, a_n=a_n, Wi=(W_ir, W_iz, W_in), Wh=(W_hr, W_hz, W_hn))


def gru_step_backward(dh_t, cache):
    r, z, n, a_n, hp, x = cache["r"], cache["z"], cache["n"], cache["a_n"], cache["hp"], cache["x"]
    W_ir, W_iz, W_in = cache["Wi"]
    W_hr, W_hz, W_hn = cache["Wh"]
    g_n = dh_t * (1.0 - z) * (1.0 - n * n)
    g_z = dh_t * (hp - n) * z * (1.0 - z)
    g_r = g_n * a_n * r * (1.0 - r)
    g_an = g_n * r
    dx = g_r @ W_ir + g_z @ W_iz + g_n @ W_in
    dh_prev = dh_t * z + g_r @ W_hr + g_z @ W_hz + g_an @ W_hn
    dW_ih = np.vstack([g_r.T @ x, g_z.T @ x, g_n.T @ x])
    dW_hh = np.vstack([g_r.T @ hp, g_z.T @ hp, g_an.T @ hp])
    db_ih = np.concatenate([g_r.sum(0), g_z.sum(0), g_n.sum(0)])
    db_hh = np.concatenate([g_r.sum(0), g_z.sum(0), g_an.sum(0)])
    return dx, dh_prev, dW_ih, dW_hh, db_ih, db_hh
