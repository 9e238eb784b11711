"""bench_e2e.py's layout: the local stack in a process of its own, each measured run a fresh process (its
``--child``), and which CPUs each gets (``CpuPlan``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.emulated.stack_process import (
    StackProcess,
    child_env,
    stack_process,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_E2E = REPO_ROOT / "benchmarks" / "bench_e2e.py"  # its --child runs one measurement


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the local stack and the measured function get.

    In production the warehouse is not on the function's CPU; here fakesnow/DuckDB and moto would otherwise
    take cores from the process being measured, and from whichever method overlaps its I/O the most. So, when
    there are at least two CPUs, the measured process gets exactly one (Lambda gives a function one vCPU at
    1,769 MB and about 1.16 at the template's 2,048 MB) and the stack gets the others. ``--no-pin`` turns it off.
    """

    stack: frozenset[int] | None = None
    function: frozenset[int] | None = None

    @classmethod
    def choose(cls, pin: bool) -> CpuPlan:
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls()
        return cls(stack=frozenset(cpus[:-1]), function=frozenset(cpus[-1:]))

    def describe(self) -> str:
        if self.function is None:
            return "not pinned: the function and the local stack share every CPU"
        return f"function pinned to CPU {sorted(self.function)}, local stack to CPU {sorted(self.stack or ())}"

    @staticmethod
    def _pin(cpus: frozenset[int] | None) -> Any:
        if cpus is None:
            return None
        return lambda: os.sched_setaffinity(0, cpus)

    def stack_preexec(self) -> Any:
        return self._pin(self.stack)

    def function_preexec(self) -> Any:
        return self._pin(self.function)


CPU_PLAN = CpuPlan()  # set by main() from --no-pin


def running_stack() -> AbstractContextManager[StackProcess]:
    """The local stack in a process of its own, on the CPUs ``CPU_PLAN`` gives it."""
    return stack_process(CPU_PLAN.stack_preexec())  # the preexec only sets the CPU affinity, before exec


def run_child(stack: StackProcess, kind: str, event: dict[str, Any], **options: Any) -> dict[str, Any]:
    """One measurement in a fresh process with the function's environment and tables of its own."""
    suffix = uuid.uuid4().hex[:8].upper()
    env = child_env(
        stack.env
        | {
            "TARGET_TABLE": f"BENCH_{suffix}",
            "REJECTS_TABLE": f"BENCH_REJ_{suffix}",
            "LEDGER_TABLE": f"BENCH_L_{suffix}",
        }
        | {k: str(v) for k, v in options.pop("env", {}).items()}
        | {"BENCH_STACK_PID": str(stack.proc.pid)}
    )
    spec = json.dumps({"kind": kind, "event": event, "options": options})
    proc = subprocess.run(
        [sys.executable, str(BENCH_E2E), "--child", spec],
        preexec_fn=CPU_PLAN.function_preexec(),  # only sets the CPU affinity, before exec
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"bench":')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return dict(json.loads(lines[-1])["bench"])


def median_of(runs: list[dict[str, Any]], key: str = "seconds") -> float:
    return float(statistics.median(r[key] for r in runs))
