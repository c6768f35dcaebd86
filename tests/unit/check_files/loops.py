"""(b) whose forward never ends: the checker stops it at the time limit and exits 3."""


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    while True:
        pass


def rnn_backward(dh, cache):
    raise NotImplementedError
