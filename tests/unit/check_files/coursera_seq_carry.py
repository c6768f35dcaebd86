# Building a Recurrent Neural Network - Step by Step
# rnn_forward / rnn_backward only, the cell inlined, column-major (n_x, m, T_x)
import numpy as np


def softmax(x):
    e_x = np.exp(x - np.max(x))
    return e_x / e_x.sum(axis=0)


def rnn_forward(x, a0, parameters):
    Wax, Waa, ba = parameters["Wax"], parameters["Waa"], parameters["ba"]
    Wya, by = parameters["Wya"], parameters["by"]
    n_x, m, T_x = x.shape
    n_a = Waa.shape[0]
    a = np.zeros((n_a, m, T_x))
    y_pred = np.zeros((Wya.shape[0], m, T_x))
    caches = []
    a_prev = a0
    for t in range(T_x):
        a_next = np.tanh(Wax @ x[:, :, t] + Waa @ a_prev + ba)
        y_pred[:, :, t] = softmax(Wya @ a_next + by)
        caches.append((a_next, a_prev, x[:, :, t], parameters))
        a[:, :, t] = a_next
        a_prev = a_next
    return a, y_pred, (caches, x)


def rnn_backward(da, caches):
    caches, x = caches
    n_a, m, T_x = da.shape
    n_x = x.shape[0]
    grads = {"dx": np.zeros((n_x, m, T_x)), "dWax": np.zeros((n_a, n_x)), "dWaa": np.zeros((n_a, n_a)),
             "dba": np.zeros((n_a, 1))}
    da_prev = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        a_next, a_prev, xt, parameters = caches[t]
        dz = da[:, :, t] * (1 - a_next ** 2)
        grads["dx"][:, :, t] = parameters["Wax"].T @ dz
        grads["dWax"] += dz @ xt.T
        grads["dWaa"] += dz @ a_prev.T
        grads["dba"] += dz.sum(axis=1, keepdims=True)
        da_prev = parameters["Waa"].T @ dz
    grads["da0"] = da_prev
    return grads
