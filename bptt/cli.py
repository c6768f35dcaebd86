"""`python -m bptt`: verify the engine against autograd, export a trace or the reproduction script, gradient flow.

Each command is one entry of COMMANDS (help, its own flags, its handler); every command also takes the config flags."""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from . import flow as _flow
from .analysis import analyze
from .check import checker as _check
from .check import report as _check_report
from .check import runner as _check_runner
from .compare import summary
from .config import FIELDS, ConfigError, RNNConfig, parse_value
from .engine import run_engine
from .export import write_export, write_script
from .problem import draw_problem
from .repro import side_by_side, whole

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2
EXPORT_SUFFIXES = (".npz", ".csv", ".py")


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump, no traceback
        raise UsageError(message)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RNNConfig field (--hidden-size, ...), parsed later so errors name the flag and its bounds."""
    for name, field in FIELDS.items():
        default = getattr(RNNConfig(), name)
        metavar = "{" + ",".join(field.choices) + "}" if field.choices else name.upper()
        parser.add_argument(_flag(name), dest=name, metavar=metavar, default=None,
                            help=f"{field.help}; {field.allowed()} (default {default})")


def config_from_args(args: argparse.Namespace) -> RNNConfig:
    """The RNNConfig the flags describe; UsageError naming the flag when a value or the combination is refused."""
    values: dict[str, Any] = {}
    for name in FIELDS:
        raw = getattr(args, name)
        if raw is None:
            continue
        try:
            values[name] = parse_value(name, raw)
        except ConfigError as err:
            raise UsageError(f"{_flag(name)}: {err}") from None
    try:
        return RNNConfig(**values)
    except ConfigError as err:
        raise UsageError(f"{_flag(err.field)}: {err}") from None


# ----------------------------------------------------------------------------------------------------------------------
# verify

def _fmt(v: float) -> str:
    return f"{v:.2e}" if math.isfinite(v) else str(v)


def cmd_verify(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    an = analyze(cfg)
    summ = summary(an.table)
    if args.json:
        report = {
            "config": cfg.to_dict(),
            "passed": an.all_passed,
            "worst_rel_err": an.worst_rel_err if math.isfinite(an.worst_rel_err) else str(an.worst_rel_err),
            "first_divergence": an.first_divergence,
            "nonfinite": int(an.table["nonfinite"].sum()),
            "quantities": [
                {k: (_json_num(v)) for k, v in row.items()} for row in summ.to_dict(orient="records")
            ],
        }
        if args.values:
            report["values"] = {q: {"numpy": _json_values(mine), "torch": _json_values(ref)}
                                for q, mine, ref in _final_values(an)}
        print(json.dumps(report, indent=2))
    else:
        print(f"BPTT Explorer verify: {_describe(cfg)}")
        w = max(len(q) for q in summ["quantity"]) + 2
        print(f"{'quantity':<{w}}{'implementation':<19}{'reference':<19}{'max abs err':>12}{'max rel err':>13}"
              f"{'steps':>7}  result")
        for row in summ.itertuples():
            verdict = "ok" if row.passed else f"FAIL ({row.failing_steps} of {row.rows})"
            if row.nonfinite:
                verdict += f", {row.nonfinite} non-finite"
            steps = "whole" if row.whole else row.rows            # a whole-sequence row: "FAIL (1 of 1)"
            print(f"{row.quantity:<{w}}{row.implementation:<19}{row.reference:<19}{_fmt(row.max_abs_err):>12}"
                  f"{_fmt(row.max_rel_err):>13}{steps:>7}  {verdict}")
        if an.first_divergence:
            fd = an.first_divergence
            gate = f" [gate {fd['gate']}]" if "gate" in fd else ""
            print(f"first divergence: {fd['quantity']}{gate} at t = {fd['t']} (0-based; t = {fd['t'] + 1} counting "
                  f"from 1)")
        verdict = "everything agrees with PyTorch autograd" if an.all_passed else "MISMATCH against PyTorch autograd"
        print(f"{verdict}: worst relative error {_fmt(an.worst_rel_err)} (tolerance {an.table['tol'].iloc[0]:g})")
        if args.values:
            _print_values(an)
    return EXIT_OK if an.all_passed else EXIT_MISMATCH


def _json_num(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else str(float(v))
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return None if v is None or v is pd.NA else v


def _describe(cfg: RNNConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items())


def _final_values(an) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, numpy engine, the torch module) of h, dx, dh0 (dc0) and the four weight gradients."""
    def of(result, q: str) -> np.ndarray:
        return result.gradients[q] if q in result.gradients else getattr(result, q)
    return [(q, of(an.engine, q), of(an.torch_rnn, q)) for q in whole(an.config.cell)]


def _json_values(x: Any) -> Any:
    """An array as nested lists of full-precision floats (inf and nan as strings, like the rest of the JSON)."""
    if isinstance(x, np.ndarray):
        x = x.tolist()
    return [_json_values(v) for v in x] if isinstance(x, list) else _json_num(x)


def _print_values(an) -> None:
    """The final values, NumPy engine | torch.nn.RNN side by side to 6 decimals, as the worked example printed them."""
    for q, mine, ref in _final_values(an):
        print()
        print(side_by_side(q, mine, ref))


# ----------------------------------------------------------------------------------------------------------------------
# export

def cmd_export(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if not args.output.lower().endswith(EXPORT_SUFFIXES):
        raise UsageError(f"--output must end in {', '.join(EXPORT_SUFFIXES)}, got {args.output!r}")
    try:
        path = (write_script(cfg, args.output) if args.output.lower().endswith(".py") else
                write_export(analyze(cfg), args.output))
    except OSError as err:
        raise UsageError(f"--output: cannot write {args.output!r}: {err.strerror or err}") from None
    print(f"wrote {path}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------------------------
# flow

def _flow_flags(parser: argparse.ArgumentParser) -> None:
    """The flow command's own flags (build_parser adds the config flags to every command)."""
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON (time 0-based)")
    parser.add_argument("--batch-element", dest="batch_element", default="0", metavar="B",
                        help="the batch element whose Jacobian products are shown; 0..batch_size-1 (default 0)")


def cmd_flow(args: argparse.Namespace) -> int:
    """`python -m bptt flow`: print the gradient-flow numbers of the config the flags describe."""
    cfg = config_from_args(args)
    try:
        b = int(str(args.batch_element).strip(), 10)
    except ValueError:
        b = -1
    if not 0 <= b < cfg.batch_size:
        raise UsageError(f"--batch-element must be an integer in 0..{cfg.batch_size - 1} (batch_size "
                         f"{cfg.batch_size}), got {args.batch_element!r}")
    problem = draw_problem(cfg)
    report = _flow.flow_report(problem, run_engine(problem), b)
    print(json.dumps(_flow.report_json(report), indent=2) if args.json else _flow.report_text(report))
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------------------------
# check: a student's own BPTT against the reference

def _check_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE.py", help="your code: step functions, whole-sequence functions (torch.nn.RNN, "
                                                   "LSTM or GRU layout, CS231n or Coursera) or the worked exercise's "
                                                   "class; the cell comes from its names (lstm_*, gru_*, rnn_*) or "
                                                   "--cell")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="also print every quantity's table, config by config")
    p.add_argument("--timeout", default=str(_check_runner.DEFAULT_TIMEOUT), metavar="S",
                   help=f"seconds your code may run in all (default {_check_runner.DEFAULT_TIMEOUT:g})")
    p.add_argument("--memory", default=str(_check_runner.DEFAULT_MEMORY_MB), metavar="MB",
                   help=f"memory limit of the process that runs your code, in MiB "
                        f"(default {_check_runner.DEFAULT_MEMORY_MB})")


def cmd_check(args: argparse.Namespace) -> int:
    """`python -m bptt check FILE.py`: exit 0 all agree, 1 something differs, 2 bad usage, 3 your code failed."""
    for name in ("bug", "truncate"):
        if getattr(args, name) is not None:
            raise UsageError(f"{_flag(name)} is not allowed with check: your code is compared with full BPTT without "
                             f"a bug (see python -m bptt verify {_flag(name)} for those)")
    try:
        timeout = float(args.timeout)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise UsageError(f"--timeout must be a number of seconds in (0, 3600], got {args.timeout!r}")
    try:
        memory = int(args.memory)
    except ValueError:
        memory = -1
    if not 256 <= memory <= 65536:
        raise UsageError(f"--memory must be an integer number of MiB in 256..65536, got {args.memory!r}")
    import torch
    explicit = any(getattr(args, n) is not None for n in FIELDS if n != "cell")    # --cell alone: the default configs
    configs = [config_from_args(args)] if explicit else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # the references are tiny: a pool of threads only waits for a loaded machine's cores
    try:
        report = _check.check_file(args.file, configs, timeout=timeout, memory_mb=memory, cell=args.cell)
    finally:
        torch.set_num_threads(threads)
    if report.usage:
        raise UsageError(report.usage)
    print(json.dumps(_check_report.report_json(report), indent=2) if args.json
          else _check_report.report_text(report, verbose=args.verbose))
    return report.exit_code


# ----------------------------------------------------------------------------------------------------------------------
# entry point

def _verify_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--values", action="store_true",
                   help="also print the final values, NumPy | PyTorch side by side (with --json: as a \"values\" "
                        "object, full precision)")


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", required=True,
                   help="where to write: a path ending in .npz or .csv (the trace), or .py (the reproduction script, "
                        "which ends with PASS or FAIL)")


# name -> (help, add its own flags, run); every command also takes the config flags
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}
COMMANDS["verify"] = ("check every per-step quantity against PyTorch autograd (exit 1 on a mismatch)",
                      _verify_flags, cmd_verify)
COMMANDS["export"] = ("write the trace to .npz or .csv, or the reproduction script to .py", _export_flags,
                      cmd_export)
COMMANDS["check"] = ("check your own BPTT code against the reference, step by step (exit 1 differs, 3 your code "
                     "failed)", _check_flags, cmd_check)
COMMANDS["flow"] = ("gradient flow: ‖dL/dh_t‖ per t, Jacobian norms, W_hh's spectrum, the truncation gap",
                    _flow_flags, cmd_flow)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bptt", description="BPTT Explorer: backpropagation through time, checked "
                                                        "against PyTorch autograd.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_flags, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_config_flags(p)
        add_flags(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see python -m bptt --help)")
        return COMMANDS[args.command][2](args)
    except UsageError as err:
        print(f"python -m bptt: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
