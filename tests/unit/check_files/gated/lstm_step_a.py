# LSTM, one step at a time, same layout as torch.nn.LSTM (gates stacked i, f, g, o)
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_step_forward(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    H = h_prev.shape[1]
    gates = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh      # (B, 4H)
    i = sigmoid(gates[:, 0:H])
    f = sigmoid(gates[:, H:2 * H])
    g = np.tanh(gates[:, 2 * H:3 * H])
    o = sigmoid(gates[:, 3 * H:4 * H])
    c_t = f * c_prev + i * g
    h_t = o * np.tanh(c_t)
    cache = (x_t, h_prev, c_prev, i, f, g, o, c_t, W_ih, W_hh)
    return h_t, c_t, cache


def lstm_step_backward(dh_t, dc_t, cache):
    x_t, h_prev, c_prev, i, f, g, o, c_t, W_ih, W_hh = cache
    tanh_c = np.tanh(c_t)
    # total gradient on the cell: what came from t+1 plus the way through h_t
    dc = dh_t * o * (1 - tanh_c ** 2)
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    do = dh_t * tanh_c
    # through the nonlinearities
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f)
    da_g = dg * (1 - g ** 2)
    da_o = do * o * (1 - o)
    da = np.hstack([da_i, da_f, da_g, da_o])
    dx_t = da @ W_ih
    dh_prev = da @ W_hh
    dc_prev = dc * f
    dW_ih = da.T @ x_t
    dW_hh = da.T @ h_prev
    db_ih = da.sum(axis=0)
    db_hh = da.sum(axis=0)
    return dx_t, dh_prev, dc_prev, dW_ih, dW_hh, db_ih, db_hh
