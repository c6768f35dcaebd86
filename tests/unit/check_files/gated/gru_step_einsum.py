"""GRU step, torch.nn.GRU layout. Written with einsum because I kept mixing up transposes."""
import numpy as np


def _s(v):
    return np.exp(-np.logaddexp(0.0, -v))


def gru_step_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    H = h_prev.shape[1]
    gi = np.einsum("ki,bi->bk", W_ih, x_t) + b_ih
    gh = np.einsum("kh,bh->bk", W_hh, h_prev) + b_hh
    r = _s(gi[:, :H] + gh[:, :H])
    z = _s(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    h_t = n + z * (h_prev - n)
    return h_t, (x_t, h_prev, r, z, n, gh[:, 2 * H:], W_ih, W_hh)


def gru_step_backward(dh_t, cache):
    x_t, h_prev, r, z, n, hn, W_ih, W_hh = cache
    a_n = dh_t * (1 - z) * (1 - n ** 2)
    a_z = dh_t * (h_prev - n) * z * (1 - z)
    a_r = a_n * hn * r * (1 - r)
    d_i = np.concatenate([a_r, a_z, a_n], 1)
    d_h = np.concatenate([a_r, a_z, a_n * r], 1)
    dx_t = np.einsum("bk,ki->bi", d_i, W_ih)
    dh_prev = dh_t * z + np.einsum("bk,kh->bh", d_h, W_hh)
    return (dx_t, dh_prev, np.einsum("bk,bi->ki", d_i, x_t), np.einsum("bk,bh->kh", d_h, h_prev),
            d_i.sum(0), d_h.sum(0))
