"""(b) whose forward allocates without bound: the checker stops it at the memory limit and exits 3."""


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    hoard = []
    while True:
        hoard.append(bytearray(50 * 2**20))


def rnn_backward(dh, cache):
    raise NotImplementedError
