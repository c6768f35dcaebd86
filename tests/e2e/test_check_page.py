"""The Check your code page in a real browser: an NPZ upload and a pasted file reach their results and heatmaps,
without a console error; one click on "Check this code" right after pasting is enough. The test server listens on
127.0.0.1, so the code path is on."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bptt.app import check as check_page
from bptt.check.checker import draw_problem, reference
from bptt.config import RNNConfig

from .helpers import PAGES, exceptions, wait_for_app

FILES = Path(__file__).resolve().parents[1] / "unit" / "check_files"


def test_npz_and_code_checks_in_the_browser(new_page):
    page = new_page(PAGES["Check your code"])
    wait_for_app(page, expect="[data-testid='stFileUploader']")
    cfg = RNNConfig()
    ref = reference(draw_problem(cfg))
    acc = ref.unrolled.dW_hh_acc * 1.01
    buf = io.BytesIO()
    np.savez(buf, dx=ref.torch_rnn.dx, dh0=ref.torch_rnn.dh0, dW_ih=ref.torch_rnn.dW_ih, dW_hh=acc[0],
             db_ih=ref.torch_rnn.db_ih, db_hh=ref.torch_rnn.db_hh, dW_hh_acc=acc)
    page.locator(f".st-key-{check_page.NPZ_KEY} input[type=file]").set_input_files(
        {"name": "grads.npz", "mimeType": "application/octet-stream", "buffer": buf.getvalue()})
    page.wait_for_selector("text=Diagnosis", timeout=60_000)
    page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=60_000)
    main = page.locator("[data-testid='stMain']").inner_text()
    assert "First divergence" in main and "dW_hh_acc" in main and f"t = {cfg.seq_len - 1} in the files" in main

    box = page.locator(f".st-key-{check_page.PASTE_KEY} textarea")
    assert "monospace" in box.evaluate("el => getComputedStyle(el).fontFamily")
    uploader = page.locator(f".st-key-{check_page.PY_KEY}").inner_text()
    assert "256 KB" in uploader and "1MB" not in uploader           # one limit, the real one
    box.fill((FILES / "step_carry_transposed.py").read_text())
    page.locator(f".st-key-{check_page.RUN_KEY} button").click()    # one click, no Ctrl+Enter first
    page.wait_for_selector("text=carry-transposed", timeout=90_000)
    wait_for_app(page)
    main = page.locator("[data-testid='stMain']").inner_text()
    assert "(a) step functions" in main and "Checked: the code pasted in the box" in main
    assert exceptions(page) == []
    assert page.console.errors() == []
