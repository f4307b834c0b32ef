"""`jobq demo`: a seeded queue file, four workers on the demo handlers, and the dashboard.

Also the seeded data sets that the dashboard's tests, screenshots and benchmark use:
`seed_showcase` (small, deterministic: fixed ids, times and texts) and `seed_bulk` (a million
jobs). They drive the store directly so that jobs end up running, failed or succeeded with
attempts and tracebacks without any worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time

from .backend import ClaimFilter, Ending, Role, open_backend
from .model import NewJob
from .queue import Queue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .backend import Backend

WORDCOUNT = "import json,sys; print(len(json.load(sys.stdin)['text'].split()))"
STOP_TIMEOUT = 10.0  # seconds to wait for the pool after SIGTERM before SIGKILL


def demo_db_path() -> str:
    """Where the demo's queue file lives: the user data dir, next to the default queue file."""
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("jobq", appauthor=False), "demo.db")


def worker_command(db_path: str) -> list[str]:
    """The `jobq work` command line that runs the demo handlers (one of them a command)."""
    wordcount = shlex.join([sys.executable, "-c", WORDCOUNT])
    return [sys.executable, "-m", "jobq", "--db", db_path, "work", "-c", "4",
            "--app", "jobq.demo_handlers", "--exec", f"text.wordcount={wordcount}",
            "--shutdown-timeout", "3", "--name", "demo"]  # fmt: skip


def seed_demo(q: Queue, rng: random.Random | None = None) -> None:
    """Fill a fresh demo file: a mix of types, queues and priorities, some scheduled."""
    from .demo_handlers import make_job

    rng = rng or random.Random(7)
    jobs: list[dict[str, object]] = [make_job(rng, n) for n in range(60)]
    for n in range(8):
        job = make_job(rng, 100 + n)
        job["delay"] = rng.choice([90, 300, 1800, 7200])
        jobs.append(job)
    jobs += [{"type": "report.build", "payload": {"report": "nightly", "n": i},
              "queue": "reports"} for i in range(4)]  # fmt: skip
    # a type no demo worker handles: the dashboard explains why it waits
    jobs.append({"type": "pdf.render", "payload": {"doc": "invoice-17.html"}, "queue": "default"})
    q.enqueue_many(jobs)


def ensure_generator(q: Queue) -> None:
    """Make sure exactly one generator job is waiting, so new work keeps arriving."""
    if q.count("pending", type="demo.generator") == 0:
        q.enqueue("demo.generator", {"n": 1000}, queue="default", priority=-10)


def start_workers(db_path: str, log_path: str) -> subprocess.Popen[bytes]:
    """Start the demo pool in its own session (so it can be stopped as a group)."""
    env = dict(os.environ, JOBQ_DB=db_path)
    env.pop("NOTIFY_SOCKET", None)
    with open(log_path, "ab") as log:
        return subprocess.Popen(worker_command(db_path), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, env=env, start_new_session=True)  # fmt: skip


def stop_workers(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM the pool's process group, wait, then SIGKILL whatever is left of the group."""
    pgid = proc.pid  # start_new_session: the pool leads its own group
    if proc.poll() is None:
        _killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # children of the pool (and their command handlers) share its group: leave none behind
    _killpg(pgid, signal.SIGKILL)
    try:
        code = proc.wait(5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        return None
    deadline = time.monotonic() + 5  # orphaned children are reaped by init, not by us
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.05)
    return code


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_demo(db_path: str | None = None, *, read_only: bool = False) -> int:
    """Seed (or reuse) the demo file, start `jobq work -c 4` on it, open the dashboard, and
    stop the workers when the dashboard exits. Returns the exit code."""
    path = db_path or demo_db_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with Queue(path) as q:
        if q.count() == 0:
            seed_demo(q)
        ensure_generator(q)
    log_path = os.path.join(os.path.dirname(path) or ".", "demo-workers.log")
    proc = start_workers(path, log_path)
    try:
        from tui.app import make_app  # lazily: the core never loads the dashboard

        make_app(path, read_only=read_only).run()
    finally:
        code = proc.poll()
        stop_workers(proc)
    if code not in (None, 0):
        print(f"jobq demo: the workers exited early (code {code}); see {log_path}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"jobq demo: queue file {path}; workers stopped")
    return 0


# ---- seeded data for tests, screenshots and the benchmark --------------------------------------

SHOWCASE_NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC, the frozen clock of the screenshots
SHOWCASE_WORKER = "pool-a1"

_TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/handlers/{module}.py", line {line}, in {func}
    {code}
  File "/srv/app/lib/{lib}.py", line {line2}, in {func2}
    raise {exc}
{exc_line}
"""


def _traceback(module: str, func: str, code: str, lib: str, func2: str, exc_line: str) -> str:
    return _TRACEBACK.format(module=module, line=42, func=func, code=code, lib=lib, line2=117,
                             func2=func2, exc=exc_line.split(":")[0] + "(...)",
                             exc_line=exc_line)  # fmt: skip


def seed_showcase(path: str, now: float = SHOWCASE_NOW) -> Backend:
    """A small deterministic queue file: every state, retries, tracebacks, a live pool, a
    paused queue, a type no worker handles. Returns the open backend (close it when done)."""
    s = open_backend(path, Role.PRODUCER)
    wid = SHOWCASE_WORKER + "/1"

    def new(type_: str, payload: object, queue: str = "default", priority: int = 0,
            run_at: float | None = None, max_attempts: int | None = None) -> NewJob:  # fmt: skip
        return NewJob(type=type_, payload_json=json.dumps(payload), queue=queue,
                      priority=priority, run_at=run_at, max_attempts=max_attempts)  # fmt: skip

    def history(job: NewJob, fails: list[float], error: str, tb: str, out: str | None) -> None:
        # each job is the only pending one of its type while its history is written
        s.enqueue([job], fails[0] - 5)
        for at in fails:
            claimed = s.claim(wid, at, 30, ClaimFilter(types=(job.type,)))
            s.end_attempt(claimed[0].id, claimed[0].lease_token or "", at + 1.5, Ending.FAIL,
                          error, traceback=tb, output=out, rand=0.5)  # fmt: skip

    s.register_worker(SHOWCASE_WORKER, name="web-1", host="app-server-1", pid=4242,
                      concurrency=4, queues=[], now=now - 3600,
                      types=["email.send", "images.resize", "webhook.deliver",
                             "report.build"])  # fmt: skip
    hook_err = "ConnectionError: POST https://hooks.example.net/orders: connection refused"
    hook_tb = _traceback("hooks", "deliver", "resp = post(url, body)", "http", "post", hook_err)
    smtp_err = "SMTPTemporaryError: 421 smtp.example.com: too many connections"
    smtp_tb = _traceback("mail", "send", "smtp.connect(host)", "smtp", "connect", smtp_err)
    size_err = "ValueError: image too large: 12000x9000 pixels"
    size_tb = _traceback("images", "resize", "w, h = fit(img, box)", "imaging", "fit", size_err)
    for n in range(2):  # failed for good after 3 attempts
        history(new("webhook.deliver", {"url": "https://hooks.example.net/orders", "n": n},
                    "webhooks", max_attempts=3),
                [now - 590 + n, now - 560 + n, now - 500 + n], hook_err, hook_tb,
                "POST /orders\n")  # fmt: skip
    history(new("email.send", {"to": "root@example.com", "template": "alert"}, "mail",
                max_attempts=1), [now - 400], smtp_err, smtp_tb, None)  # fmt: skip
    history(new("images.resize", {"path": "uploads/huge.png", "width": 12000, "height": 9000},
                "images", max_attempts=1), [now - 350], size_err, size_tb, None)  # fmt: skip
    # retrying: backing off after failed attempts
    history(
        new("webhook.deliver", {"url": "https://hooks.example.net/billing", "n": 7}, "webhooks"),
        [now - 200, now - 150, now - 20],
        hook_err,
        hook_tb,
        None,
    )
    history(new("email.send", {"to": "ops@example.com", "template": "invoice"}, "mail"),
            [now - 60, now - 20], smtp_err, smtp_tb, None)  # fmt: skip
    # succeeded over the last minute (the sparkline), with captured output
    for k in range(12):
        s.enqueue([new("images.resize", {"path": f"uploads/{k:05d}.jpg", "width": 1920},
                       "images")], now - 61 + k * 4)  # fmt: skip
        job = s.claim(wid, now - 60 + k * 4, 30, ClaimFilter(types=("images.resize",)))[0]
        s.complete_many([(job.id, job.lease_token or "", json.dumps({"width": 960, "height": 720}),
                          f"resized uploads/{k:05d}.jpg to 960x720\n")],
                        now - 58 + k * 4 - (k % 3))  # fmt: skip
    # running: a slow report and an email
    s.enqueue([new("report.build", {"report": "daily-sales"}, "reports", -10)], now - 100)
    s.claim(wid, now - 95, 600, ClaimFilter(types=("report.build",)))
    s.enqueue([new("email.send", {"to": "ada@example.com", "template": "welcome"}, "mail",
                   10)], now - 4)  # fmt: skip
    s.claim(wid, now - 3, 30, ClaimFilter(types=("email.send",)))
    # cancelled by an operator
    ids = s.enqueue([new("webhook.deliver", {"url": "https://old.example.net/x", "n": i},
                         "webhooks") for i in range(2)], now - 45)  # fmt: skip
    s.cancel(ids, now - 30)
    # pending: ready, scheduled, paused queue, a type no worker handles
    users = ["grace", "linus", "margaret", "ken", "barbara", "edsger", "donald"]
    batch = [new("email.send", {"to": f"{u}@example.com", "template": "welcome"}, "mail",
                 10 if i % 3 == 0 else 0) for i, u in enumerate(users)]  # fmt: skip
    batch += [new("images.resize", {"path": f"uploads/{i:05d}.jpg", "width": 1920}, "images",
                  -10 if i % 2 else 0) for i in range(20, 26)]  # fmt: skip
    batch += [new("webhook.deliver", {"url": "https://hooks.example.net/orders", "n": i},
                  "webhooks") for i in range(10, 14)]  # fmt: skip
    batch += [new("email.send", {"to": "newsletter@example.com", "template": "digest"}, "mail",
                  run_at=now + 3600),
              new("report.build", {"report": "weekly"}, "reports", run_at=now + 86400),
              new("pdf.render", {"doc": "invoice-17.html"}, "default", 10),
              new("images.resize", {"path": "uploads/big.tiff", "width": 4000}, "thumbs",
                  20)]  # fmt: skip
    s.enqueue(batch, now - 30)
    s.set_paused("thumbs", True, now - 200)
    s.worker_heartbeat(SHOWCASE_WORKER, now - 2, 57)
    return s


def seed_bulk(path: str, n: int = 1_000_000, *, batch: int = 5000) -> None:
    """A big file for the benchmark: `n` jobs, ~90 % succeeded, the rest failed or pending."""
    rng = random.Random(3)
    s = open_backend(path, Role.PRODUCER)
    types = ["email.send", "images.resize", "webhook.deliver", "report.build"]
    now = time.time() - n * 0.001
    try:
        done = 0
        while done < n:
            k = min(batch, n - done)
            jobs = [
                NewJob(
                    type=rng.choice(types),
                    queue=rng.choice(["mail", "images", "default"]),
                    payload_json=json.dumps({"n": done + i, "user": f"u{rng.randint(1, 9999)}"}),
                    priority=rng.choice([-10, 0, 0, 10]),
                )
                for i in range(k)
            ]
            s.enqueue(jobs, now)
            if done + k <= n * 0.9:
                claimed = s.claim("bench/1", now, 60, limit=k)
                s.complete_many([(j.id, j.lease_token or "", "true", None) for j in claimed], now)
            elif done + k <= n * 0.95:
                for j in s.claim("bench/1", now, 60, limit=k // 10):
                    s.end_attempt(
                        j.id,
                        j.lease_token or "",
                        now,
                        Ending.FAIL,
                        "ValueError: bad input",
                        traceback="Traceback…\nValueError: bad input",
                        retryable=False,
                    )
            done += k
            now += k * 0.001
    finally:
        s.close()
