"""The gated cells' BPTT derived step by step, in the engine's names (no streamlit: the Derivation page lays it out).

Each derivation is a list of sections; a section is a heading and its lines, each line LaTeX (`tex`; a `\\\\` breaks
a long one so that it fits 800 px) or markdown (`md`). A LaTeX line names the heatmap / export name of the quantity
it defines (`name`, e.g. `d_gates[f]`). The equations are those of bptt/cells/lstm.py and bptt/cells/gru.py, in the
order their plain BPTT computes them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cells.gru import ResetBeforeMatmul


@dataclass(frozen=True)
class Line:
    """One line of a derivation: LaTeX or markdown, and the export name of the quantity it defines (if any)."""
    kind: str              # "tex" | "md"
    text: str
    name: str = ""         # the quantity's heatmap / export name: "dc_total", "d_gates[f]", "dW_ih" ...


def tex(text: str, name: str = "") -> Line:
    return Line("tex", text, name)


def md(text: str) -> Line:
    return Line("md", text)


Section = tuple[str, tuple[Line, ...]]

_LOSS = "The loss is the exercise's, $L = \\sum_t \\langle dh\\_out_t, h_t \\rangle${}. Time runs t = 1..T on screen " \
        "(0-based in the downloads)."

DX = tex(r"dx_t = d\_gates_t\, W_{ih}", "dx")      # both gated cells: the input gradient through all gate blocks

LSTM: tuple[Section, ...] = (
    ("The model: `torch.nn.LSTM`", (
        md("Four gates share one weight matrix: the rows of $W_{ih}$ (4H × I) and $W_{hh}$ (4H × H) are the blocks "
           "i | f | g | o, in PyTorch's order."),
        tex(r"z_t = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh} \\ (B \times 4H:\ i \mid f \mid g \mid o)"),
        tex(r"i_t = \sigma(z_t^{i}),\quad f_t = \sigma(z_t^{f}), \\ g_t = \tanh(z_t^{g}),\quad "
            r"o_t = \sigma(z_t^{o})", "i, f, g, o"),
        tex(r"c_t = f_t \odot c_{t-1} + i_t \odot g_t", "c"),
        tex(r"h_t = o_t \odot \tanh(c_t)", "h"),
        md(_LOSS.format(": nothing arrives at the cell state except through $h_t$")))),
    ("Two carries into step t", (
        md("Step t hands two states to step t+1, so the gradient comes back along two paths: into $h_t$ through "
           "$W_{hh}$ (the hidden path) and into $c_t$ through $f_{t+1}$ (the cell path)."),
        tex(r"dh\_total_t = \frac{\partial L}{\partial h_t} = dh\_out_t + dh\_next_t, \\ "
            r"dh\_next_t = dh\_prev_{t+1},\ dh\_next_T = 0", "dh_total"),
        tex(r"dc\_next_t = dc\_prev_{t+1} = dc\_total_{t+1} \odot f_{t+1}, \\ dc\_next_T = 0", "dc_next"),)),
    ("Why dc_t = dc_next ⊙ f_{t+1} + dh_t ⊙ o_t ⊙ (1 − tanh² c_t)", (
        md("$c_t$ reaches the loss in two ways: through $c_{t+1} = f_{t+1} \\odot c_t + \\dots$, whose derivative "
           "with respect to $c_t$ is $f_{t+1}$ (elementwise), and through $h_t = o_t \\odot \\tanh(c_t)$, whose "
           "derivative is $o_t \\odot (1 - \\tanh^2 c_t)$. The chain rule adds the two:"),
        tex(r"dc\_total_t = \frac{\partial L}{\partial c_t} = \underbrace{dc\_total_{t+1} \odot f_{t+1}}"
            r"_{dc\_next_t\ \text{(cell path)}} \\ + \underbrace{dh\_total_t \odot o_t \odot (1 - \tanh^2 c_t)}"
            r"_{\text{through } h_t}", "dc_total"),
        md("Along the cell path alone the gradient is multiplied by $f$ at each step, with no $W_{hh}$ and no "
           "squashing derivative: from $c_T$ back to $c_s$ it carries $\\prod_{k=s+1}^{T} f_k$. That product is "
           "what the Gradient flow page sets against the vanilla RNN's Jacobian norms."),)),
    ("The gates' pre-activations", (
        md("From $c_t = f_t \\odot c_{t-1} + i_t \\odot g_t$ and $h_t = o_t \\odot \\tanh c_t$, then through each "
           "gate's own nonlinearity ($\\sigma'(s) = s(1-s)$ read from the gate's value, $\\tanh'(g) = 1 - g^2$):"),
        tex(r"d\_gates_t[i] = dc\_total_t \odot g_t \odot i_t (1 - i_t)", "d_gates[i]"),
        tex(r"d\_gates_t[f] = dc\_total_t \odot c_{t-1} \odot f_t (1 - f_t)", "d_gates[f]"),
        tex(r"d\_gates_t[g] = dc\_total_t \odot i_t \odot (1 - g_t^2)", "d_gates[g]"),
        tex(r"d\_gates_t[o] = dh\_total_t \odot \tanh(c_t) \odot o_t (1 - o_t)", "d_gates[o]"),
        md("Stacked side by side in W_ih's row order i | f | g | o they are `d_gates` (B × 4H), the gated cells' "
           "counterpart of the RNN's d_tanh."),)),
    ("What step t sends on", (
        DX,
        tex(r"dh\_prev_t = d\_gates_t\, W_{hh} \quad (= dh\_next_{t-1})", "dh_prev"),
        tex(r"dc\_prev_t = dc\_total_t \odot f_t \quad (= dc\_next_{t-1})", "dc_prev"),
        md("At t = 1 these are $\\partial L/\\partial h_0$ and $\\partial L/\\partial c_0$ (`dh0`, `dc0`)."),)),
    ("The weight gradients: four gates meet in one matrix", (
        tex(r"dW_{ih} = \sum_t d\_gates_t^{\top} x_t, \\ dW_{hh} = \sum_t d\_gates_t^{\top} h_{t-1}",
            "dW_ih, dW_hh"),
        tex(r"db_{ih} = db_{hh} = \sum_t \sum_b d\_gates_t", "db_ih, db_hh"),
        md("Each gate's block of rows (W_ii | W_if | W_ig | W_io) gets its own gate's gradient: `dW_ih_acc [f]` in "
           "the Verification table is the forget gate's rows of the running sum."),)),
)

GRU: tuple[Section, ...] = (
    ("The model: `torch.nn.GRU`, PyTorch's form", (
        md("Three gate blocks r | z | n in the rows of $W_{ih}$ (3H × I) and $W_{hh}$ (3H × H)."),
        tex(r"gi_t = W_{ih} x_t + b_{ih}, \quad gh_t = W_{hh} h_{t-1} + b_{hh} \\ (B \times 3H:\ r \mid z "
            r"\mid n)"),
        tex(r"r_t = \sigma(gi_t^{r} + gh_t^{r}), \qquad z_t = \sigma(gi_t^{z} + gh_t^{z})", "r, z"),
        tex(r"hn_t = W_{hn} h_{t-1} + b_{hn}, \\ n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot hn_t)", "hn, n"),
        tex(r"h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}", "h"),
        md(_LOSS.format("")))),
    ("The paper's form beside it", (
        md("The later paper form (Cho et al., 2014) puts the reset gate inside the product. The two are different "
           "functions with different gradients; `torch.nn.GRU` (and this engine) computes PyTorch's:"),
        tex(r"\text{PyTorch:}\ n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\ "
            r"\text{paper:}\ n_t = \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})"),
        md("What changes in the gradient, with $d\\_n$ the gradient at n's pre-activation:"),
        tex(r"\text{PyTorch:}\ dr = d\_n \odot hn_t,\quad dW_{hn} \mathrel{+}= (d\_n \odot r_t)^{\top} h_{t-1},"
            r" \\ db_{hn} \mathrel{+}= \textstyle\sum_b d\_n \odot r_t"),
        tex(r"\text{paper:}\ dr = (d\_n\, W_{hn}) \odot h_{t-1},\quad dW_{hn} \mathrel{+}= d\_n^{\top} (r_t \odot "
            r"h_{t-1}), \\ db_{hn} \mathrel{+}= \textstyle\sum_b d\_n"),
        md(f"Running the paper's backward against PyTorch's forward is the bug `{ResetBeforeMatmul.name}`: its first "
           "wrong number is the reset gate's block `d_gates [r]` at t = T (the preset \"GRU: PyTorch's reset "
           "gate\")."),)),
    ("One carry into step t", (
        tex(r"dh\_total_t = dh\_out_t + dh\_next_t, \\ dh\_next_t = dh\_prev_{t+1},\ dh\_next_T = 0",
            "dh_total"),)),
    ("Through the update h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}", (
        tex(r"dn_t = dh\_total_t \odot (1 - z_t), \qquad dz_t = dh\_total_t \odot (h_{t-1} - n_t), \\ "
            r"dh\_total_t \odot z_t \ \text{goes straight to } h_{t-1}"),
        md("That last term is the GRU's direct path: from $h_T$ back to $h_s$ it carries $\\prod z$ "
           "(the Gradient flow page)."),)),
    ("The gates' pre-activations", (
        tex(r"d\_gates_t[n] = d\_n_t = dn_t \odot (1 - n_t^2)", "d_gates[n]"),
        tex(r"d\_gates_t[r] = d\_n_t \odot hn_t \odot r_t (1 - r_t)", "d_gates[r]"),
        tex(r"d\_gates_t[z] = dz_t \odot z_t (1 - z_t)", "d_gates[z]"),
        tex(r"d\_hn_t = \frac{\partial L}{\partial hn_t} = d\_n_t \odot r_t", "d_hn"),
        md("`d_gates` (B × 3H) is the gradient at the input-side pre-activations $gi_t$, in the order r | z | n. "
           "On the hidden side the n block's gradient is `d_hn`, not $d\\_n$: r sits between them."),)),
    ("What step t sends on", (
        DX,
        tex(r"dh\_prev_t = dh\_total_t \odot z_t \\ + [\,d\_gates_t[r],\ d\_gates_t[z],\ d\_hn_t\,]\, W_{hh}",
            "dh_prev"),)),
    ("The weight gradients", (
        tex(r"dW_{ih} \mathrel{+}= d\_gates_t^{\top} x_t, \\ db_{ih} \mathrel{+}= \textstyle\sum_b "
            r"d\_gates_t", "dW_ih, db_ih"),
        tex(r"dW_{hh} \mathrel{+}= [\,d\_gates_t[r],\ d\_gates_t[z],\ d\_hn_t\,]^{\top} h_{t-1}", "dW_hh"),
        tex(r"db_{hh} \mathrel{+}= \textstyle\sum_b [\,d\_gates_t[r],\ d\_gates_t[z],\ d\_hn_t\,]", "db_hh"),
        md("So $db_{hh} \\ne db_{ih}$ in the n block (W_in | W_hn see different gradients), unlike the LSTM's and "
           "the vanilla RNN's two biases."),)),
)

DERIVATIONS: dict[str, tuple[Section, ...]] = {"lstm": LSTM, "gru": GRU}
