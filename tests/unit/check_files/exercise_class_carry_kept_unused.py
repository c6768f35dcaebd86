"""RNN cell for the BPTT exercise (NumPy part). Same maths as torch.nn.RNN with tanh.

The driver at the bottom runs it forward over the sequence, then backward, then sums the stacks.
"""
import numpy as np


class RNNCell:
    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh):
        self.weight_ih = weight_ih
        self.weight_hh = weight_hh
        self.bias_ih = bias_ih
        self.bias_hh = bias_hh
        # stacks for the forward values, popped in backward
        self.x_stack = []
        self.h_prev_stack = []
        self.h_stack = []
        # gradient that flows to the previous step
        self.carry = None
        # results
        self.dx_list = []
        self.dw_ih_stack = []
        self.dw_hh_stack = []
        self.db_ih_stack = []
        self.db_hh_stack = []

    def __call__(self, x_t, h_prev):
        a_t = x_t @ self.weight_ih.T + self.bias_ih + h_prev @ self.weight_hh.T + self.bias_hh
        h_t = np.tanh(a_t)
        self.x_stack.append(x_t)
        self.h_prev_stack.append(h_prev)
        self.h_stack.append(h_t)
        return h_t

    def backward(self, dh_t):
        x_t = self.x_stack.pop()
        h_prev = self.h_prev_stack.pop()
        h_t = self.h_stack.pop()
        if self.carry is None:
            self.carry = np.zeros_like(dh_t)
        d_tanh = dh_t * (1 - h_t ** 2)                       # (B, H)
        self.carry = d_tanh @ self.weight_hh                 # to step t-1
        dx_t = d_tanh @ self.weight_ih
        self.dx_list.insert(0, dx_t)
        self.dw_ih_stack.append(d_tanh.T @ x_t)
        self.dw_hh_stack.append(d_tanh.T @ h_prev)
        # bias grads: keep d_tanh, the batch gets summed at the end
        self.db_ih_stack.append(d_tanh)
        self.db_hh_stack.append(d_tanh)


if __name__ == "__main__":
    import torch

    np.random.seed(123)
    torch.manual_seed(123)
    rnn = torch.nn.RNN(input_size=4, hidden_size=5).double()
    w_ih, w_hh, b_ih, b_hh = [p.detach().numpy() for p in rnn.parameters()]
    x = np.random.random((3, 3, 4))
    h0 = np.random.random((1, 3, 5))
    dh = np.random.random((3, 3, 5))

    cell = RNNCell(w_ih, w_hh, b_ih, b_hh)
    h = h0[0]
    for t in range(3):
        h = cell(x[t], h)
    for t in reversed(range(3)):
        cell.backward(dh[t])
    print(np.stack(cell.dx_list))
    print(np.sum(cell.dw_ih_stack, axis=0))
    print(np.sum(cell.dw_hh_stack, axis=0))
    print(np.sum(cell.db_ih_stack, axis=(0, 1)))
    print(np.sum(cell.db_hh_stack, axis=(0, 1)))
