"""CPU placement and contention: wrk and the server under test on CPUs of their own, and how
much of the server's CPU the server itself got during a run (Linux ``/proc``)."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

#: before a timed run, wait for the machine's other processes to use less than this % of it
QUIET_BUSY_PCT = 10.0


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def placement(pin: bool) -> tuple[list[int] | None, list[int] | None]:
    """(wrk CPUs, server CPUs)."""
    if not pin or shutil.which("taskset") is None:
        return None, None
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return None, None
    if len(cpus) < 2:
        return None, None
    return [cpus[0]], [cpus[1]]


def _proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process, all threads (Linux /proc), in seconds."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_ticks(cpu: int | None) -> tuple[int, int, int] | None:
    """(busy, hypervisor steal, total) jiffies of one CPU from /proc/stat."""
    if cpu is None:
        return None
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                steal = v[7] if len(v) > 7 else 0
                total = sum(v[:8])
                return total - idle - steal, steal, total
    except (OSError, ValueError):
        return None
    return None


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_pct(sample_s: float = 1.0) -> float:
    """% of all CPUs busy (not idle, not iowait) over ``sample_s``, from /proc/stat."""

    def read() -> tuple[int, int] | None:
        try:
            v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        total = sum(v[:8])
        return total - v[3] - v[4], total

    a = read()
    time.sleep(sample_s)
    b = read()
    if a is None or b is None or b[1] == a[1]:
        return 0.0
    return 100 * (b[0] - a[0]) / (b[1] - a[1])


def wait_quiet(max_wait: float, threshold: float = QUIET_BUSY_PCT) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) until other processes leave the machine nearly idle.

    Our own servers are idle between runs, so whatever is busy then is someone else (a test
    suite, another benchmark). Returns (busy %, seconds waited).
    """
    t0 = time.monotonic()
    busy = machine_busy_pct()
    while busy > threshold and time.monotonic() - t0 < max_wait:
        time.sleep(2.0)
        busy = machine_busy_pct()
    return busy, time.monotonic() - t0


@dataclass(slots=True)
class CpuUse:
    """What one timed run used, in % of one CPU over the run (None: could not be read)."""

    #: the server process (all its threads): well under 100 % means starved (or waiting)
    server_pct: float | None
    #: wrk (this process's children)
    wrk_pct: float
    #: the 1-minute load average before and after
    loadavg: tuple[float, float]
    #: other processes (and the hypervisor) on the server's CPU
    others_pct: float | None


class CpuMeter:
    """Reads the counters right before a run (:meth:`start`) and right after it (:meth:`stop`)."""

    def __init__(self, server_pid: int | None, server_cpu: int | None) -> None:
        self.pid = server_pid
        self.cpu = server_cpu

    def start(self) -> None:
        self.load_before = os.getloadavg()[0]
        self.ticks0 = _cpu_ticks(self.cpu)
        self.server0 = _proc_cpu_seconds(self.pid)
        self.wrk0 = _children_cpu_seconds()

    def stop(self, duration_s: float) -> CpuUse:
        wrk = 100 * (_children_cpu_seconds() - self.wrk0) / duration_s
        server1 = _proc_cpu_seconds(self.pid)
        server = (
            100 * (server1 - self.server0) / duration_s
            if self.server0 is not None and server1 is not None
            else None
        )
        loadavg = (self.load_before, os.getloadavg()[0])
        ticks1 = _cpu_ticks(self.cpu)
        others: float | None = None
        if self.ticks0 is not None and ticks1 is not None and server is not None:
            hz = os.sysconf("SC_CLK_TCK")
            busy_pct = 100 * (ticks1[0] - self.ticks0[0]) / hz / duration_s
            steal_pct = 100 * (ticks1[1] - self.ticks0[1]) / hz / duration_s
            # what ran on the server's CPU besides the server, plus what the hypervisor took
            others = max(0.0, busy_pct - server) + steal_pct
        return CpuUse(server, wrk, loadavg, others)
