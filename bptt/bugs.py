"""The bug zoo: every deliberate mistake the NumPy engine can make, each defined once, here.

One backward step of BPTT has five places where a hand-written implementation typically goes wrong. `Step` is the
correct step, with one hook per place (static methods on plain NumPy arrays). A bug is a subclass of `Step` that
overrides the hook where it makes its mistake, and carries what the app, the exports and the tests say about it:

    name       the `--bug` value
    note       one sentence for the banner
    equation   LaTeX of what the buggy step computes instead (the app shows it in red under the correct equations)
    diverges   (quantity, t) of the first wrong number in the comparison's order, t counted like a Python index
               (-1 is the last step, T-1; -2 is T-2; 0 is the first step)
    script     the whole-sequence results the reproduction script reports as wrong (at T >= 2, upstream "all",
               no truncation, tanh)

The engine calls the hooks (bptt.engine), the reproduction script contains their source (bptt.export), and
config.BUGS is NAMES. Nothing here imports the rest of the package.
"""
from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------------------------------------------------
# the correct step


class Step:
    """The correct BPTT step's five mistake points; every bug is a Step that overrides one of them."""
    name = "none"                               # the --bug value
    note = ""                                   # one sentence for the app's banner
    equation = ""                               # LaTeX of what a bug computes instead
    diverges: tuple[str, int] | None = None     # (quantity, t) of a bug's first wrong number; t = -1 is T-1
    script: tuple[str, ...] = ()                # the results a bug's reproduction script reports as wrong

    @staticmethod
    def total_gradient(dh_out_t: np.ndarray, dh_next_t: np.ndarray, t: int, T: int) -> np.ndarray:
        """dh_total_t = dh_out_t + dh_next_t: the gradient from the output plus the carry from step t+1. (B, H)"""
        return dh_out_t + dh_next_t

    @staticmethod
    def fprime(nonlinearity: str, a_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        """f'(a_t): 1 - h_t² for tanh (as (1 - h_t)(1 + h_t), exact near saturation), [a_t > 0] for relu. (B, H)"""
        if nonlinearity == "tanh":
            return (1.0 - h_t) * (1.0 + h_t)
        return (a_t > 0).astype(np.float64)

    @staticmethod
    def carry(d_pre_t: np.ndarray, W_hh: np.ndarray, t: int) -> np.ndarray:
        """dh_prev_t = d_pre_t W_hh: what step t sends back to h_{t-1} (at t = 0 that is dL/dh0). (B, H)"""
        return d_pre_t @ W_hh

    @staticmethod
    def dW_hh_input(h_prev_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        """The hidden state that dW_hh's contribution d_pre_tᵀ (.) multiplies: h_{t-1}. (B, H)"""
        return h_prev_t

    @staticmethod
    def accumulate(total: np.ndarray, contribution: np.ndarray) -> np.ndarray:
        """A weight gradient after one more step: the running total plus this step's contribution (+=)."""
        return total + contribution


# ----------------------------------------------------------------------------------------------------------------------
# the bugs, in the order the app lists them


class ForgetCarry(Step):
    """BUG (on purpose): the carry dh_next_t from step t+1 is dropped."""
    name = "forget-carry"
    note = "the gradient carried in from t+1 (dh_next) is dropped, so dh_t = dh_out_t only."
    equation = r"dh\_total_t = dh\_out_t \quad (\text{the carry } dh\_next_t \text{ is dropped})"
    diverges = ("dh_total", -2)     # at T-1 the carry is zero anyway
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def total_gradient(dh_out_t: np.ndarray, dh_next_t: np.ndarray, t: int, T: int) -> np.ndarray:
        return dh_out_t  # BUG (on purpose): + dh_next_t is missing


class NoActivationDerivative(Step):
    """BUG (on purpose): the factor f'(a_t) is left out."""
    name = "no-activation-derivative"
    note = "the factor f'(a_t) is left out: d_pre_t = dh_t."
    equation = r"d\_pre_t = dh\_total_t \quad (\text{no } \odot f'(a_t))"
    diverges = ("d_pre", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def fprime(nonlinearity: str, a_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        return np.ones_like(h_t)  # BUG (on purpose): f'(a_t) taken as 1


class DerivativeOfPreActivation(Step):
    """BUG (on purpose): tanh's derivative read at a_t (1 - a_t²) instead of from h_t (1 - h_t²)."""
    name = "derivative-of-pre-activation"
    note = "tanh's derivative is taken as 1 − a_t² instead of 1 − h_t²."
    equation = r"d\_tanh_t = dh\_total_t \odot (1 - a_t^{2}) \quad (\text{instead of } 1 - h_t^{2})"
    diverges = ("d_pre", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def fprime(nonlinearity: str, a_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        if nonlinearity == "tanh":
            return 1.0 - a_t * a_t  # BUG (on purpose): 1 - a_t², not 1 - h_t²
        return (a_t > 0).astype(np.float64)  # relu's [a_t > 0] read at a_t is right


class DWhhUsesHt(Step):
    """BUG (on purpose): dW_hh's contribution uses h_t instead of h_{t-1}."""
    name = "dWhh-uses-h_t"
    note = "dW_hh accumulates d_pre_tᵀ h_t instead of d_pre_tᵀ h_(t−1)."
    equation = r"dW_{hh} \mathrel{+}= d\_pre_t^{\top} h_t \quad (\text{instead of } h_{t-1})"
    diverges = ("dW_hh_acc", -1)
    script = ("dW_hh",)

    @staticmethod
    def dW_hh_input(h_prev_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        return h_t  # BUG (on purpose): h_t, not h_{t-1}


class CarryTransposed(Step):
    """BUG (on purpose): the carry is multiplied by W_hhᵀ instead of W_hh."""
    name = "carry-transposed"
    note = "the carry is d_pre_t · W_hhᵀ instead of d_pre_t · W_hh."
    equation = r"dh\_prev_t = d\_pre_t\, W_{hh}^{\top} \quad (\text{instead of } W_{hh})"
    diverges = ("dh_prev", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def carry(d_pre_t: np.ndarray, W_hh: np.ndarray, t: int) -> np.ndarray:
        return d_pre_t @ W_hh.T  # BUG (on purpose): W_hh transposed


class OverwriteInsteadOfAccumulate(Step):
    """BUG (on purpose): each weight gradient is assigned (=), not added (+=), so only step t = 0's contribution
    remains."""
    name = "overwrite-instead-of-accumulate"
    note = ("each weight gradient is assigned, not added, at every step, so only the contribution of the last step "
            "processed (the first timestep) remains; dx and dh0 are untouched.")
    equation = (r"dW_{ih} = d\_pre_t^{\top} x_t,\ dW_{hh} = d\_pre_t^{\top} h_{t-1},\ db = \textstyle\sum_b d\_pre_t"
                r" \quad (= \text{ instead of } \mathrel{+}=)")
    diverges = ("dW_ih_acc", -2)    # at T-1 the total is that step's contribution anyway
    script = ("dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def accumulate(total: np.ndarray, contribution: np.ndarray) -> np.ndarray:
        return contribution  # BUG (on purpose): total + contribution, with the total thrown away


class DropUpstream(Step):
    """BUG (on purpose): dh_out_t is added only at the last step; earlier steps get only the carry."""
    name = "drop-upstream"
    note = "the upstream gradient dh_out_t is added only at the last step (t = T); earlier steps get only the carry."
    equation = r"dh\_total_t = dh\_next_t \ \text{for } t < T \quad (\text{the output's } dh\_out_t \text{ is dropped})"
    diverges = ("dh_total", -2)     # with upstream "last", dh_out is zero before T-1 and nothing changes
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def total_gradient(dh_out_t: np.ndarray, dh_next_t: np.ndarray, t: int, T: int) -> np.ndarray:
        if t == T - 1:
            return dh_out_t + dh_next_t
        return dh_next_t  # BUG (on purpose): dh_out_t is dropped before the last step


class TanhAppliedTwice(Step):
    """BUG (on purpose): tanh's derivative computed as 1 - tanh(h_t)², applying tanh to h_t a second time."""
    name = "tanh-applied-twice"
    note = "tanh's derivative is computed as 1 − tanh(h_t)² instead of 1 − h_t²: tanh is applied twice."
    equation = r"d\_tanh_t = dh\_total_t \odot (1 - \tanh(h_t)^{2}) \quad (\text{instead of } 1 - h_t^{2})"
    diverges = ("d_pre", -1)
    script = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")

    @staticmethod
    def fprime(nonlinearity: str, a_t: np.ndarray, h_t: np.ndarray) -> np.ndarray:
        if nonlinearity == "tanh":
            return 1.0 - np.tanh(h_t) ** 2  # BUG (on purpose): tanh(h_t) = tanh(tanh(a_t))
        return (a_t > 0).astype(np.float64)  # relu(relu(a)) has the same derivative: nothing to break


class Dh0NotReturned(Step):
    """BUG (on purpose): the gradient of h0 comes back as zeros (the last carry, from step t = 0, is dropped)."""
    name = "dh0-not-returned"
    note = "the gradient of h0 comes back as zeros: the carry the first timestep sends back is dropped."
    equation = r"dL/dh_0 = 0 \quad (\text{instead of } dh\_prev_1 = d\_pre_1\, W_{hh})"
    diverges = ("dh_prev", 0)       # the carry step t = 0 sends to h0; the whole-sequence dh0 row fails too
    script = ("dh0",)

    @staticmethod
    def carry(d_pre_t: np.ndarray, W_hh: np.ndarray, t: int) -> np.ndarray:
        if t == 0:
            return np.zeros_like(d_pre_t)  # BUG (on purpose): dL/dh0 is never computed
        return d_pre_t @ W_hh


# ----------------------------------------------------------------------------------------------------------------------
# the zoo

ZOO: dict[str, type[Step]] = {s.name: s for s in (
    Step, ForgetCarry, NoActivationDerivative, DerivativeOfPreActivation, DWhhUsesHt, CarryTransposed,
    OverwriteInsteadOfAccumulate, DropUpstream, TanhAppliedTwice, Dh0NotReturned,
)}
NAMES: tuple[str, ...] = tuple(ZOO)   # "none" first: config.BUGS


def step_of(name: str) -> type[Step]:
    """The Step a bug name selects ("none": the correct one); KeyError names the known bugs."""
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown bug {name!r}; known: {', '.join(NAMES)}") from None


def first_divergence(name: str, T: int) -> dict | None:
    """{"quantity", "t"} (0-based) where the bug's first wrong number is expected in a T-step comparison; None for
    no bug, or when the sequence is too short to have that step (e.g. forget-carry at T = 1: no carry exists)."""
    d = ZOO[name].diverges
    if d is None or not -T <= d[1] < T:
        return None
    return {"quantity": d[0], "t": d[1] % T}
