"""Run a student's file in a separate process, with a time limit and a memory limit (see child.py)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..problem import Problem

DEFAULT_TIMEOUT = 20.0     # seconds, for all the calls of one check
DEFAULT_MEMORY_MB = 2048   # the child's address space (importing torch alone maps ~650 MB)
ROOT = Path(__file__).resolve().parents[2]   # the folder that holds the bptt package


@dataclass(frozen=True)
class Job:
    """One problem to run the student's code on: a config's own problem, or a probe of it."""
    id: str
    problem: Problem
    probe: bool = False     # probes run only on the whole-sequence shapes


@dataclass(frozen=True)
class StudentFailure:
    """The student's code raised, or hit the time or memory limit (exit code 3)."""
    kind: str        # "exception" | "memory" | "exit" | "timeout" | "crash"
    where: str       # which call, e.g. "rnn_step_backward at t = 1"
    message: str     # the trimmed traceback, or what happened
    job: str | None = None


@dataclass
class RunResult:
    """What the child reported: the units it recognised and ran, their outputs, and problems found in them."""
    units: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)     # {unit, job, quantity, t, message}
    arrays: dict[str, np.ndarray] = field(default_factory=dict)   # "unit|job|quantity[|t]" -> torch-layout array
    failure: StudentFailure | None = None
    output: str = ""                                        # what the student's code printed (the tail)

    def get(self, unit: str, job: str, quantity: str, t: int | None = None) -> np.ndarray | None:
        return self.arrays.get(f"{unit}|{job}|{quantity}" + ("" if t is None else f"|{t}"))


def _read_tail(path: Path, size: int = 65536) -> str:
    """The last `size` bytes of a file, as text."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read().decode(errors="replace")


def _tail(text: str, lines: int = 20, width: int = 240) -> str:
    """The last lines of what was printed, each cut to width characters."""
    return "\n".join(s if len(s) <= width else s[:width] + " …" for s in text.strip().splitlines()[-lines:])


def run_student(path: str | Path, jobs: list[Job], timeout: float = DEFAULT_TIMEOUT,
                memory_mb: int = DEFAULT_MEMORY_MB) -> RunResult:
    """Run the student's file on these jobs in a child process; never raises for anything the student's code does."""
    path = os.path.abspath(path)
    spec = {"path": path, "jobs": [{"id": j.id, "probe": j.probe} for j in jobs],
            "sizes": {j.id: [*j.problem.x.shape, j.problem.W_hh.shape[1]] for j in jobs},
            "cell": jobs[0].problem.config.cell if jobs else "rnn"}
    arrays = {f"{j.id}|{k}": v for j in jobs for k, v in
              (("x", j.problem.x), ("h0", j.problem.h0), ("dh_out", j.problem.dh_out), *j.problem.weights.items(),
               *((("c0", j.problem.c0),) if j.problem.c0 is not None else ()))}
    with tempfile.TemporaryDirectory(prefix="bptt_check_") as tmp:
        folder = Path(tmp)
        (folder / "spec.json").write_text(json.dumps(spec))
        np.savez(folder / "in.npz", **arrays)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
        log = folder / "output.txt"          # what the student's code prints: a file, so no pipe can fill up
        with open(log, "wb") as out_file:
            proc = subprocess.Popen([sys.executable, "-m", "bptt.check.child", str(folder), str(int(memory_mb))],
                                    cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out_file, stderr=out_file,
                                    start_new_session=True)
            try:
                proc.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill(proc)
        err = _read_tail(log)
        if timed_out:
            return RunResult(failure=StudentFailure(
                "timeout", "running your code",
                f"your code did not finish within the time limit of {timeout:g} s (an endless loop?); "
                f"a slow but correct file can have more with --timeout"), output=_tail(err))
        result_file = folder / "result.json"
        if proc.returncode != 0 or not result_file.exists():
            return RunResult(failure=_crash(proc.returncode, err, memory_mb), output=_tail(err))
        meta = json.loads(result_file.read_text())
        with np.load(folder / "out.npz", allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    res = RunResult(meta["units"], meta["notes"], meta["problems"], out, output=_tail(err))
    e = meta.get("error")
    if e:
        msg = e["traceback"]
        if e["kind"] == "memory":
            msg = f"your code hit the memory limit of {memory_mb} MiB (it allocates without bound?)\n{msg}"
        elif e["kind"] == "exit":
            msg = f"your code called sys.exit / raised SystemExit\n{msg}"
        res.failure = StudentFailure(e["kind"], e["where"], msg, e.get("job"))
    return res


def _crash(code: int | None, err: str, memory_mb: int) -> StudentFailure:
    """The child ended without writing its result: a signal, os._exit, or memory exhausted outside Python."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        what = f"the process running your code was killed by {name}"
    else:
        what = f"the process running your code ended with exit code {code}"
    if "MemoryError" in err or "memory" in err.lower() or "std::bad_alloc" in err:
        what += f" (out of memory: the limit is {memory_mb} MiB)"
    tail = _tail(err, 8)
    return StudentFailure("crash", "running your code", what + (f"\n{tail}" if tail else ""))


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child's process group: the child if it still runs, and any process the student's code started
    (the group outlives its leader while a member is alive, and its id is not reused until then)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
