# BPTT for the vanilla RNN, torch.nn.RNN layout.
# Gradients go into one dict so I can print them all at the end.
import numpy as np

grads = {}


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    hs = []
    h = h0
    for x_t in x:
        h = np.tanh(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        hs.append(h)
    return np.stack(hs), (x, h0, np.stack(hs), W_ih, W_hh)


def rnn_backward(dh, cache):
    x, h0, h, W_ih, W_hh = cache
    T = x.shape[0]
    if not grads:
        grads["W_ih"] = np.zeros_like(W_ih)
        grads["W_hh"] = np.zeros_like(W_hh)
        grads["b"] = np.zeros(W_hh.shape[0])
    dx = np.zeros_like(x)
    dnext = np.zeros_like(h0)
    for t in reversed(range(T)):
        hp = h0 if t == 0 else h[t - 1]
        g = (dh[t] + dnext) * (1.0 - h[t] * h[t])
        dx[t] = g @ W_ih
        grads["W_ih"] += g.T @ x[t]
        grads["W_hh"] += g.T @ hp
        grads["b"] += g.sum(axis=0)
        dnext = g @ W_hh
    return dx, dnext, grads["W_ih"], grads["W_hh"], grads["b"], grads["b"].copy()
