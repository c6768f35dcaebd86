"""The Derivation page: BPTT for this RNN in LaTeX, each symbol tied to the name the heatmaps use."""
from __future__ import annotations

import streamlit as st

from ..cells import cell_of
from ..config import RNNConfig
from ..derivations import DERIVATIONS

NAMES = [
    ("x_t", "x_t", "(B × I)", "the input at step t"),
    ("h_t", "h_t", "(B × H)", "the hidden state; h_0 is given"),
    ("a_t", "a_t", "(B × H)", "the pre-activation"),
    ("dh\\_out_t", "dh_out_t", "(B × H)", "∂L/∂h_t coming directly from the output at t"),
    ("dh\\_next_t", "dh_next_t", "(B × H)", "the carry: ∂L/∂h_t through h_t+1"),
    ("dh\\_total_t", "dh_total_t", "(B × H)", "∂L/∂h_t, everything that reaches h_t"),
    ("\\delta_t", "d_tanh_t / d_relu_t (d_pre)", "(B × H)", "∂L/∂a_t"),
    ("dx_t", "dx_t", "(B × I)", "∂L/∂x_t"),
    ("dh\\_prev_t", "dh_prev_t", "(B × H)", "what step t sends to h_t−1"),
]


def lines(*equations: str) -> None:
    """Displayed equations one under another (centred), so that none is wider than a narrow window (~500 px)."""
    st.latex(r"\begin{gathered}" + r" \\[4pt] ".join(equations) + r"\end{gathered}")


def _tagged(text: str, name: str) -> str:
    """A LaTeX line (its `\\\\` breaks kept narrow enough for 800 px) with the quantity's heatmap / export name in
    grey under it."""
    tag = r" \\ \color{gray}{\small\texttt{" + name.replace("_", r"\_") + "}}" if name else ""
    return r"\begin{gathered}" + text + tag + r"\end{gathered}"


def render_gated(cfg: RNNConfig) -> None:
    """A gated cell's derivation (bptt/derivations.py), each defining line tagged with its heatmap name."""
    c = cell_of(cfg.cell)
    st.markdown(f"BPTT for the **{c.title}** (`{c.torch_name}`), derived step by step in the engine's names "
                f"(`bptt/cells/{c.name}.py` computes exactly these lines). The grey name after an equation is the "
                f"quantity's name in the heatmaps, the Verification table and the downloads; `d_gates[{c.gates[1]}]` "
                f"is the {c.gates[1]} gate's block of `d_gates`. Rows of every matrix are the batch in the code.")
    for heading, lines in DERIVATIONS[cfg.cell]:
        st.markdown(f"#### {heading}")
        for line in lines:
            if line.kind == "tex":
                st.latex(_tagged(line.text, line.name))
            else:
                st.markdown(line.text)


def render(cfg: RNNConfig) -> None:
    """The whole derivation, written for the current cell (and, for the vanilla RNN, its nonlinearity)."""
    if cfg.cell != "rnn":
        render_gated(cfg)
        return
    tanh = cfg.nonlinearity == "tanh"
    f = r"\tanh" if tanh else r"\operatorname{relu}"
    fp = r"1 - h_t^{2}" if tanh else r"\mathbb{1}[a_t > 0]"
    st.markdown("Rows of every matrix are the batch: $x_t$ is B × I, $h_t$ is B × H, so the layer reads "
                r"$a_t = x_t W_{ih}^\top + h_{t-1} W_{hh}^\top + b$ in code; below, vectors are written as in the "
                "maths. "
                "Time runs t = 1..T (the downloads use 0-based t).")
    st.markdown("#### The model and the loss")
    lines(r"a_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}", rf"h_t = {f}(a_t), \qquad t = 1,\dots,T")
    st.markdown(r"Any loss that depends on the outputs $h_1 \dots h_T$ only through its gradient "
                r"$dh\_out_t = \partial L/\partial h_t$ can be written, for the purpose of backpropagation, as")
    st.latex(r"L = \sum_{t=1}^{T} \langle dh\_out_t,\, h_t \rangle")
    st.markdown("which is what PyTorch computes when you call `output.backward(dh_out)`.")
    st.markdown("#### Two paths into h_t")
    st.markdown("$h_t$ influences $L$ directly (its own output) and through $h_{t+1}$. The chain rule adds both:")
    st.latex(r"dh\_total_t = \frac{\partial L}{\partial h_t} = dh\_out_t + \underbrace{\Big(\frac{\partial a_{t+1}}"
             r"{\partial h_t}\Big)^{\!\top} \delta_{t+1}}_{dh\_next_t}")
    lines(r"dh\_total_t = dh\_out_t + W_{hh}^{\top}\,\delta_{t+1}, \qquad dh\_next_T = 0")
    st.markdown("#### Through the nonlinearity")
    lines(r"\delta_t = \frac{\partial L}{\partial a_t} = dh\_total_t \odot f'(a_t)", rf"f'(a_t) = {fp}")
    st.markdown("For tanh the derivative is read from the output: $\\tanh'(a_t) = 1 - \\tanh^2(a_t) = 1 - h_t^2$, "
                "so the backward pass needs only the stored $h_t$. For relu it is a step function: "
                "$\\operatorname{relu}'(a_t) = \\mathbb{1}[a_t > 0]$, 1 where the unit was active and 0 where it was "
                "not, so a unit that was off at step t passes no gradient back through that step (at $a_t = 0$ "
                "PyTorch, and this engine, take the derivative as 0). The other nonlinearity is one click away in "
                "the sidebar.")
    st.markdown(f"The heatmaps call $\\delta_t$ **d_{cfg.nonlinearity}** (d_pre in the code and the downloads).")
    st.markdown("#### What step t sends on")
    lines(r"dx_t = W_{ih}^{\top} \delta_t", r"dh\_prev_t = W_{hh}^{\top} \delta_t \ \ (= dh\_next_{t-1})",
          r"\frac{\partial L}{\partial h_0} = dh\_prev_1")
    st.markdown("In the row-major code (batch in rows) the same products read `dx = d_pre @ W_ih` and "
                "`dh_prev = d_pre @ W_hh`.")
    st.markdown("#### The weight gradients")
    st.markdown("The same weights are used at every step, so their gradient is the sum of every step's share "
                "(summed over the batch as well):")
    lines(r"\frac{\partial L}{\partial W_{ih}} = \sum_{t=1}^{T} \delta_t\, x_t^{\top}",
          r"\frac{\partial L}{\partial W_{hh}} = \sum_{t=1}^{T} \delta_t\, h_{t-1}^{\top}",
          r"\frac{\partial L}{\partial b_{ih}} = \frac{\partial L}{\partial b_{hh}} = \sum_{t=1}^{T} \delta_t")
    st.markdown("The Backward page shows the partial sums over t = T … s after step s (dW_ih_acc and friends in the "
                "downloads); after the last step (t = 1) they are the full gradients.")
    st.markdown("#### Why gradients vanish or explode")
    st.latex(r"\frac{\partial h_t}{\partial h_s} = \prod_{k=s+1}^{t} \operatorname{diag}\big(f'(a_k)\big)\, W_{hh}")
    st.markdown("A product of t − s such factors shrinks or grows geometrically with the distance, depending on "
                "how W_hh's singular values compare with 1 (try the presets, and hh_scale).")
    st.markdown("#### Truncated BPTT")
    st.markdown("With truncate = K ≥ 1 the hidden state is detached every K steps, as `h = h.detach()` in a training "
                "loop: the windows start at t = 1, K+1, 2K+1, … (1-based), and no gradient crosses from a window "
                "into the one before it:")
    lines(r"dh\_next_{t} = 0", r"\text{whenever } h_t \text{ is the last state of a window}")
    st.markdown("Each window's gradients are then exact for the window, but dependencies longer than K steps are "
                "ignored: cheaper, and biased.")
    st.markdown("#### Names used on every page")
    st.table({"symbol": [f"${s}$" for s, *_ in NAMES], "name in the heatmaps": [n for _, n, *_ in NAMES],
              "shape": [sh for *_, sh, _ in NAMES], "meaning": [m for *_, m in NAMES]})
