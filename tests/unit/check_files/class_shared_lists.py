import numpy as np


class VanillaRNNCell:
    """One tanh step. Call it once per time step, then backward once per step in reverse."""

    # running results, filled by backward()
    dx_list = []
    dw_ih_stack = []
    dw_hh_stack = []
    db_ih_stack = []
    db_hh_stack = []

    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh):
        self.Wi, self.Wh = weight_ih, weight_hh
        self.bi, self.bh = bias_ih, bias_hh
        self.saved = []
        self.carry = None

    def __call__(self, x_t, h_prev):
        h_t = np.tanh(x_t @ self.Wi.T + self.bi + h_prev @ self.Wh.T + self.bh)
        self.saved.append((x_t, h_prev, h_t))
        return h_t

    def backward(self, dh_t):
        x_t, h_prev, h_t = self.saved.pop()
        if self.carry is not None:
            dh_t = dh_t + self.carry
        da = dh_t * (1 - h_t ** 2)
        self.carry = da @ self.Wh
        self.dx_list.insert(0, da @ self.Wi)
        self.dw_ih_stack.append(da.T @ x_t)
        self.dw_hh_stack.append(da.T @ h_prev)
        self.db_ih_stack.append(da.sum(0))
        self.db_hh_stack.append(da.sum(0))
