"""(d) with a planted mistake: each step overwrites the weight gradients instead of adding to them (zoo: overwrite-instead-of-accumulate)."""
import numpy as np


class RNNCell:
    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh):
        self.weight_ih = weight_ih
        self.weight_hh = weight_hh
        self.bias_ih = bias_ih
        self.bias_hh = bias_hh
        self.x_stack = []
        self.h_prev_stack = []
        self.h_stack = []
        self.carry = None
        self.dx_list = []
        self.dw_ih_stack = []
        self.dw_hh_stack = []
        self.db_ih_stack = []
        self.db_hh_stack = []

    def __call__(self, x_t, h_prev):
        h_t = np.tanh(x_t @ self.weight_ih.T + self.bias_ih + h_prev @ self.weight_hh.T + self.bias_hh)
        self.x_stack.append(x_t)
        self.h_prev_stack.append(h_prev)
        self.h_stack.append(h_t)
        return h_t

    def backward(self, dh_t):
        x_t = self.x_stack.pop()
        h_prev = self.h_prev_stack.pop()
        h_t = self.h_stack.pop()
        carry = 0 if self.carry is None else self.carry
        d_tanh = (dh_t + carry) * (1 - h_t**2)
        self.carry = d_tanh @ self.weight_hh
        self.dx_list.insert(0, d_tanh @ self.weight_ih)
        self.dw_ih_stack = [d_tanh.T @ x_t]
        self.dw_hh_stack = [d_tanh.T @ h_prev]
        self.db_ih_stack = [d_tanh.sum(axis=0)]
        self.db_hh_stack = [d_tanh.sum(axis=0)]
