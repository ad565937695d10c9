"""How much does a crash forget? ``python -m benchmarks.crash_window [--trials N]``.

The SQLite replay store writes behind (a batch every ``commit_interval``, 50 ms by default). A
child process records jtis as fast as it can and reports each one, with its time, on a pipe; the
parent kills it with SIGKILL at a random moment, opens the database as a restarted server would,
and finds the reported jtis it does not hold. The window is the kill time minus the report time
of the oldest lost jti: the jtis a restart would let be replayed. Issue 10, item 6: the store
promised "at most the last 50 ms"; measured, a crash in the middle of a commit also loses that
batch, so the honest bound is the interval plus one commit's duration.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

CHILD = """
import sys, time
from pkjwt.server.replay import SqliteReplayStore
store = SqliteReplayStore(sys.argv[1], commit_interval=float(sys.argv[2]))
out = sys.stdout
i = 0
while True:
    jti = f"j{i}"
    store.add("c", jti, time.time() + 3600)
    out.write(f"{jti} {time.monotonic()}\\n")
    out.flush()
    i += 1
"""


def one_trial(interval: float, run_for: float) -> tuple[float, int, int]:
    """(window in ms, jtis reported, jtis lost) for one SIGKILL."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "replay.sqlite3"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), str(interval)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        reported: list[tuple[str, float]] = []
        deadline = time.monotonic() + run_for
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            jti, at = line.split()
            reported.append((jti, float(at)))
        os.kill(child.pid, signal.SIGKILL)
        killed = time.monotonic()
        child.wait()
        for line in child.stdout:  # what it reported before it died
            jti, at = line.split()
            reported.append((jti, float(at)))
        con = sqlite3.connect(db)
        kept = {bytes(k).decode() for (k,) in con.execute("SELECT key FROM jti_log")}
        con.close()
        lost = [at for jti, at in reported if f"1:c{jti}" not in kept]
        window = (killed - min(lost)) * 1000 if lost else 0.0
        return window, len(reported), len(lost)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash_window")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.05, help="commit_interval, s")
    args = parser.parse_args(argv)
    rng = random.Random(7)
    windows: list[float] = []
    for n in range(args.trials):
        window, reported, lost = one_trial(args.interval, rng.uniform(0.3, 1.2))
        windows.append(window)
        print(f"trial {n + 1:>3}: {reported:>6} jtis recorded, {lost:>5} lost, window "
              f"{window:6.1f} ms")  # fmt: skip
    over = sum(w > args.interval * 1000 for w in windows)
    print(
        f"\ncommit_interval {args.interval * 1000:g} ms: window median "
        f"{statistics.median(windows):.1f} ms, max {max(windows):.1f} ms; {over} of "
        f"{len(windows)} trials beyond the interval alone"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
