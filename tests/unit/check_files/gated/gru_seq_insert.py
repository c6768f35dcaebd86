# GRU over a whole sequence (torch.nn.GRU's equations: r applied to W_hn h + b_hn)
import numpy as np


def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    H = h0.shape[1]
    h_list = []
    cache = []
    h = h0
    for x_t in x:
        gi = x_t @ W_ih.T + b_ih
        gh = h @ W_hh.T + b_hh
        r = 1 / (1 + np.exp(-(gi[:, :H] + gh[:, :H])))
        z = 1 / (1 + np.exp(-(gi[:, H:2*H] + gh[:, H:2*H])))
        n = np.tanh(gi[:, 2*H:] + r * gh[:, 2*H:])
        cache.append((x_t, h, r, z, n, gh[:, 2*H:]))
        h = (1 - z) * n + z * h
        h_list.append(h)
    return np.array(h_list), (cache, W_ih, W_hh)


def gru_backward(dh, cache):
    steps, W_ih, W_hh = cache
    dW_ih = np.zeros_like(W_ih)
    dW_hh = np.zeros_like(W_hh)
    db_ih = np.zeros(W_ih.shape[0])
    db_hh = np.zeros(W_hh.shape[0])
    dxs = []
    dnext = np.zeros_like(dh[0])
    for t in reversed(range(len(steps))):
        x_t, hp, r, z, n, hn = steps[t]
        dht = dh[t] + dnext
        dn = dht * (1 - z) * (1 - n ** 2)
        dz = dht * (hp - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        gi = np.concatenate((dr, dz, dn), axis=1)
        gh = np.concatenate((dr, dz, dn * r), axis=1)
        dxs.insert(0, gi @ W_ih)
        dW_ih += gi.T @ x_t
        dW_hh += gh.T @ hp
        db_ih += gi.sum(axis=0)
        db_hh += gh.sum(axis=0)
        dnext = dht * z + gh @ W_hh
    return np.stack(dxs), dnext, dW_ih, dW_hh, db_ih, db_hh
