"""The dashboard's showcase data: a small deterministic queue (fixed ids, times and texts) for
the screenshots, the snapshot tests and the Pilot tests.

It drives the backend directly (any location: a file or a postgresql:// URL) so that jobs end up
running, failed or succeeded with attempts and tracebacks without any worker. A developer tool:
the demo's own seeding (`jobq demo`) stays in jobq/demo.py.
"""

from __future__ import annotations

import json

from jobq import NewJob
from jobq.backend import ClaimFilter, Ending, Role, open_backend

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

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
    """A small deterministic queue at `path` (a file or a postgresql:// URL): every state,
    retries, tracebacks, a live pool, a paused queue, a type no worker handles. Returns the
    open Backend (close it when done)."""
    s = open_backend(path, Role.WORKER)
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
