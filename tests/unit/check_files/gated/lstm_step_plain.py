import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_step_forward(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    """one LSTM step. W_ih is (4H, I) with rows input, forget, cell, output (PyTorch's order)"""
    H = W_hh.shape[1]
    Wi, Wf, Wg, Wo = W_ih[:H], W_ih[H:2*H], W_ih[2*H:3*H], W_ih[3*H:]
    Ui, Uf, Ug, Uo = W_hh[:H], W_hh[H:2*H], W_hh[2*H:3*H], W_hh[3*H:]
    b = b_ih + b_hh
    i = sigmoid(x_t @ Wi.T + h_prev @ Ui.T + b[:H])
    f = sigmoid(x_t @ Wf.T + h_prev @ Uf.T + b[H:2*H])
    g = np.tanh(x_t @ Wg.T + h_prev @ Ug.T + b[2*H:3*H])
    o = sigmoid(x_t @ Wo.T + h_prev @ Uo.T + b[3*H:])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, (x_t, h_prev, c_prev, i, f, g, o, c, W_ih, W_hh)


def lstm_step_backward(dh_t, dc_t, cache):
    x_t, h_prev, c_prev, i, f, g, o, c, W_ih, W_hh = cache
    H = W_hh.shape[1]
    dc = dc_t + dh_t * o * (1 - np.tanh(c) ** 2)
    dzi = dc * g * i * (1 - i)
    dzf = dc * c_prev * f * (1 - f)
    dzg = dc * i * (1 - g ** 2)
    dzo = dh_t * np.tanh(c) * o * (1 - o)
    dx = np.zeros_like(x_t)
    dh = np.zeros_like(h_prev)
    dW_ih = np.zeros_like(W_ih)
    dW_hh = np.zeros_like(W_hh)
    db = np.zeros(4 * H)
    for k, dz in enumerate((dzi, dzf, dzg, dzo)):
        rows = slice(k * H, (k + 1) * H)
        dx += dz @ W_ih[rows]
        dh += dz @ W_hh[rows]
        dW_ih[rows] = dz.T @ x_t
        dW_hh[rows] = dz.T @ h_prev
        db[rows] = dz.sum(axis=0)
    return dx, dh, dc * f, dW_ih, dW_hh, db, db
