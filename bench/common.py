"""Shared helpers: sizes, temp dirs, statistics, machine facts, result rows, child processes."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
APP = "jobq_app"  # bench/jobq_app.py: the handlers `jobq work --app` loads
TMP_PREFIX = "jobq-bench-"

# jobq is imported from this checkout even when it is not installed into the interpreter
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


class Skip(Exception):
    """A benchmark that cannot run yet (missing command, module or peer)."""


@dataclass
class Config:
    """Sizes for one run; `quick` shrinks everything to about a minute in total."""

    quick: bool
    repeats: int
    tmp: str = "/tmp"
    long_idle: bool = False  # --long-idle: the latency part's 60 s idle run in a quick run too

    def idle_seconds(self) -> int:
        """How long the latency part leaves the pool idle before its second batch."""
        return 60 if self.long_idle or not self.quick else 10

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


def stat(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements (the values are kept too)."""
    v = [float(x) for x in values]
    if not v:
        return {"n": 0}
    return {
        "median": statistics.median(v),
        "min": min(v),
        "max": max(v),
        "n": len(v),
        "values": [round(x, 6) for x in v],
    }


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(1, min(len(v), -int(-p * len(v) // 100)))
    return v[k - 1]


def alternate(subjects: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run each subject `repeats` times, rotating the order every round (noise hits all alike)."""
    names = list(subjects)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            out[name].append(subjects[name]())
    return out


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Median of the per-round ratios a[i] / b[i] (rounds ran back to back, so noise cancels)."""
    pairs = [x / y for x, y in zip(a, b, strict=False) if y]
    return statistics.median(pairs) if pairs else None


@dataclass
class Row:
    """One line of the summary table."""

    metric: str
    jobq: dict[str, Any] | None  # stat() of the subject, or None when skipped
    unit: str
    baseline_name: str = ""
    baseline: dict[str, Any] | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def fmt_value(s: dict[str, Any] | None, unit: str) -> str:
    if not s or not s.get("n"):
        return "—"
    digits = 0 if s["median"] >= 100 else (1 if s["median"] >= 10 else 2)
    one = f"{{:,.{digits}f}}"
    text = one.format(s["median"]) + f" {unit}"
    if s["n"] > 1:
        text += f" ({one.format(s['min'])}–{one.format(s['max'])})"
    return text


@contextlib.contextmanager
def workdir(cfg: Config, tag: str) -> Iterator[str]:
    """A fresh /tmp/jobq-bench-* directory, removed afterwards."""
    path = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{tag}-", dir=cfg.tmp)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def machine() -> dict[str, Any]:
    """The facts the numbers depend on."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        # other work on the machine: the ratios matter more than the absolute figures then
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


# ---- jobq as a user runs it --------------------------------------------------------------------


def jobq_cmd() -> list[str]:
    """The `jobq` console script next to this interpreter, else `python -m jobq`."""
    script = os.path.join(os.path.dirname(sys.executable), "jobq")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "jobq"]


def child_env() -> dict[str, str]:
    """Environment for jobq subprocesses: this checkout and bench/ (for --app jobq_app)."""
    env = dict(os.environ)
    extra = [BENCH_DIR, ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(extra)
    for name in list(env):
        # JOBQ_TURNSTILE is kept: it is how a run compares jobq with and without it
        if (name.startswith("JOBQ_") and name != "JOBQ_TURNSTILE") or name == "NOTIFY_SOCKET":
            del env[name]
    return env


def cli_available(command: str) -> None:
    """Raise Skip unless `jobq COMMAND --help` works in this checkout."""
    if not os.path.exists(os.path.join(ROOT, "jobq", "cli")):  # a package since the layout move
        raise Skip("jobq/cli/ not written yet")
    probe = subprocess.run(
        [*jobq_cmd(), command, "--help"], env=child_env(), capture_output=True, text=True
    )
    if probe.returncode != 0:
        raise Skip(f"`jobq {command} --help` failed: {(probe.stderr or probe.stdout)[-200:]}")


def work_available() -> None:
    """Raise Skip unless `jobq work` exists in this checkout."""
    cli_available("enqueue")
    if not os.path.exists(os.path.join(ROOT, "jobq", "pool")):  # a package since the layout move
        raise Skip("`jobq work` (jobq/pool/) not written yet")
    probe = subprocess.run(
        [*jobq_cmd(), "work", "--help"], env=child_env(), capture_output=True, text=True
    )
    if probe.returncode != 0 or "--burst" not in probe.stdout:
        raise Skip(f"`jobq work --help` failed: {(probe.stderr or probe.stdout)[-200:].strip()}")


def start_pool(db: str, concurrency: int, *, burst: bool = False, log: str | None = None):
    """Start `jobq --db DB work -c N --app jobq_app [--burst]` as a child process."""
    argv = [*jobq_cmd(), "--db", db, "work", "-c", str(concurrency), "--app", APP]
    if burst:
        argv.append("--burst")
    err = open(log or os.devnull, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        argv, env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
    )
    proc.bench_log = log  # type: ignore[attr-defined]
    err.close()
    return proc


def stop_pool(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM (graceful), then SIGKILL if it does not exit in time; return the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def log_tail(proc: subprocess.Popen[bytes]) -> str:
    log = getattr(proc, "bench_log", None)
    if not log or not os.path.exists(log):
        return ""
    with open(log, errors="replace") as f:
        return f.read()[-600:].strip()


def run_burst(db: str, concurrency: int, logdir: str, timeout: float = 600) -> float:
    """Time `jobq work --burst` from spawn to exit; raise if it fails."""
    t0 = time.monotonic()
    proc = start_pool(db, concurrency, burst=True, log=os.path.join(logdir, "burst.log"))
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"jobq work --burst still running after {timeout}s") from None
    dt = time.monotonic() - t0
    if rc != 0:
        raise RuntimeError(f"jobq work --burst exited {rc}: {log_tail(proc)}")
    return dt


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError), open(f"/proc/{entry}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def read_stamps(outdir: str) -> dict[int, float]:
    """Enqueue→start latency (seconds) per job index, from the stamp files handlers append to."""
    first: dict[int, float] = {}
    for name in os.listdir(outdir):
        with open(os.path.join(outdir, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    i, lat = int(parts[0]), float(parts[1])
                    first[i] = min(lat, first.get(i, lat))
    return first
