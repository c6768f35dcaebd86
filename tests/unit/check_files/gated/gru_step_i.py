"""GRU cell exactly like torch.nn.GRU: r, z, n stacked in W_ih (3H, I) and W_hh (3H, H)."""
import numpy as np

sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731


def gru_step_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    H = h_prev.shape[1]
    gi = x_t @ W_ih.T + b_ih
    gh = h_prev @ W_hh.T + b_hh
    z = sig(gi[:, :H] + gh[:, :H])
    r = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
    hn = gh[:, 2 * H:]
    n = np.tanh(gi[:, 2 * H:] + r * hn)
    h_t = (1 - z) * n + z * h_prev
    return h_t, (x_t, h_prev, r, z, n, hn, W_ih, W_hh)


def gru_step_backward(dh_t, cache):
    x_t, h_prev, r, z, n, hn, W_ih, W_hh = cache
    H = h_prev.shape[1]
    dn = dh_t * (1 - z)
    dz = dh_t * (h_prev - n)
    dn_pre = dn * (1 - n ** 2)          # gradient at the tanh's input
    dr = dn_pre * hn
    dhn = dn_pre * r                    # r multiplies W_hn h + b_hn
    dr_pre = dr * r * (1 - r)
    dz_pre = dz * z * (1 - z)
    d_in = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)     # input side
    d_hid = np.concatenate([dr_pre, dz_pre, dhn], axis=1)       # hidden side
    dx_t = d_in @ W_ih
    dh_prev = dh_t * z + d_hid @ W_hh
    return dx_t, dh_prev, d_in.T @ x_t, d_hid.T @ h_prev, d_in.sum(0), d_hid.sum(0)
