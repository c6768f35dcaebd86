import numpy as np

# forward: keep every hidden state, the backward needs them


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    states = []
    h = h0
    for xt in x:
        h = np.tanh(xt @ W_ih.T + h @ W_hh.T + b_ih + b_hh)
        states.append(h)
    H = np.stack(states)
    return H, {"x": x, "h0": h0, "H": H, "W_ih": W_ih, "W_hh": W_hh}


def rnn_backward(dh, cache):
    x, H, W_ih, W_hh = cache["x"], cache["H"], cache["W_ih"], cache["W_hh"]
    hs = [cache["h0"]] + list(H)          # hs[t] is h_{t-1}
    dx_list = []
    dWi = np.zeros_like(W_ih)
    dWh = np.zeros_like(W_hh)
    db = np.zeros(W_hh.shape[0])
    carry = np.zeros_like(cache["h0"])
    for t in range(len(x) - 1, -1, -1):
        delta = (dh[t] + carry) * (1 - H[t] ** 2)
        dx_list.append(delta @ W_ih)
        dWi += delta.T @ x[t]
        dWh += delta.T @ hs[t]
        db += delta.sum(axis=0)
        carry = delta @ W_hh
    return np.array(dx_list), carry, dWi, dWh, db, db.copy()
