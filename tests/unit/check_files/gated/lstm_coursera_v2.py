import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    p = parameters
    concat = np.vstack([a_prev, xt])
    ft = sigmoid(p["Wf"] @ concat + p["bf"])
    it = sigmoid(p["Wi"] @ concat + p["bi"])
    cct = np.tanh(p["Wc"] @ concat + p["bc"])
    c_next = ft * c_prev + it * cct
    ot = sigmoid(p["Wo"] @ concat + p["bo"])
    a_next = ot * np.tanh(c_next)
    yt_pred = softmax(p["Wy"] @ a_next + p["by"])
    return a_next, c_next, yt_pred, (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, p)


def lstm_cell_backward(da_next, dc_next, cache):
    a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, p = cache
    n_a = a_next.shape[0]
    tc = np.tanh(c_next)
    dc = dc_next + da_next * ot * (1 - tc ** 2)        # everything that reaches c_next
    d_o = da_next * tc * ot * (1 - ot)
    d_c = dc * it * (1 - cct ** 2)
    d_i = dc * cct * it * (1 - it)
    d_f = dc * c_prev * ft * (1 - ft)
    concat = np.vstack([a_prev, xt])
    grads = {}
    dconcat = 0
    for name, d in (("f", d_f), ("i", d_i), ("c", d_c), ("o", d_o)):
        grads["dW" + name] = d @ concat.T
        grads["db" + name] = d.sum(axis=1, keepdims=True)
        dconcat = dconcat + p["W" + name].T @ d
    grads["da_prev"] = dconcat[:n_a]
    grads["dxt"] = dconcat[n_a:]
    grads["dc_prev"] = dc * ft
    return grads
