"""Handlers of `jobq demo`: plausible work that takes time, fails now and then, and makes more.

Loaded by the demo's pool with `--app jobq.demo_handlers`. Failures raise from a nested call so
that the dashboard shows real tracebacks, and `demo.generator` keeps a gentle stream of new jobs
coming by enqueueing a few and re-enqueueing itself with a delay.
"""

from __future__ import annotations

import random
import time

from . import Fail, Queue, handler
from .model import Job, JSONValue

# types the generator produces, with relative weights
MIX = (("email.send", 5), ("images.resize", 3), ("webhook.deliver", 3), ("report.build", 1),
       ("text.wordcount", 2))  # fmt: skip
GENERATOR_DELAY = 4.0


class SMTPTemporaryError(Exception):
    """The demo's mail server said 4xx."""


def _obj(payload: JSONValue) -> dict[str, JSONValue]:
    return payload if isinstance(payload, dict) else {}


def _connect(host: str) -> None:
    if random.random() < 0.2:
        raise SMTPTemporaryError(f"421 {host}: too many connections, try again later")


@handler("email.send", max_attempts=3)
def send_email(payload: JSONValue, job: Job) -> dict[str, JSONValue]:
    """Pretend to send an email."""
    p = _obj(payload)
    time.sleep(random.uniform(0.2, 1.5))
    _connect(str(p.get("smtp", "smtp.example.com")))
    return {"message_id": f"<{job.id}.{job.attempts}@demo.jobq>", "to": p.get("to")}


def _resize(width: int, height: int) -> tuple[int, int]:
    if width * height > 40_000_000:
        raise Fail(f"image too large: {width}x{height} pixels")  # retrying cannot help
    return width // 2, height // 2


@handler("images.resize", timeout=20)
def resize_image(payload: JSONValue, job: Job) -> dict[str, JSONValue]:
    """Pretend to resize an image; huge ones fail for good."""
    p = _obj(payload)
    time.sleep(random.uniform(0.5, 3.0))
    w = p.get("width", 1024)
    h = p.get("height", 768)
    nw, nh = _resize(w if isinstance(w, int) else 1024, h if isinstance(h, int) else 768)
    print(f"resized {p.get('path')} to {nw}x{nh}")
    return {"width": nw, "height": nh}


@handler("webhook.deliver", max_attempts=5)
def deliver_webhook(payload: JSONValue, job: Job) -> int:
    """Pretend to POST to a webhook that is down a third of the time."""
    p = _obj(payload)
    time.sleep(random.uniform(0.1, 0.8))
    if random.random() < 0.33:
        raise ConnectionError(f"POST {p.get('url')}: connection refused")
    return 204


@handler("report.build", timeout=120)
def build_report(payload: JSONValue, job: Job) -> dict[str, JSONValue]:
    """A slow job, so that Running is never empty."""
    seconds = random.uniform(8.0, 25.0)
    for step in range(5):
        time.sleep(seconds / 5)
        print(f"step {step + 1}/5 done")
    return {"rows": random.randint(1_000, 90_000), "seconds": round(seconds, 1)}


def make_job(rng: random.Random, n: int) -> dict[str, object]:
    """One plausible job of the mix, as a mapping for `Queue.enqueue_many`."""
    types = [t for t, w in MIX for _ in range(w)]
    t = rng.choice(types)
    if t == "email.send":
        user = rng.choice(["ada", "grace", "linus", "margaret", "ken", "barbara"])
        payload: JSONValue = {"to": f"{user}@example.com", "template": rng.choice(
            ["welcome", "invoice", "password-reset"]), "n": n}  # fmt: skip
        return {"type": t, "payload": payload, "queue": "mail",
                "priority": rng.choice([0, 0, 0, 10])}  # fmt: skip
    if t == "images.resize":
        w = rng.choice([640, 1920, 4000, 12000])
        payload = {"path": f"uploads/{n:05d}.jpg", "width": w, "height": w * 3 // 4}
        job: dict[str, object] = {"type": t, "payload": payload, "queue": "images",
                                  "priority": rng.choice([-10, 0])}  # fmt: skip
        return job  # a 12000-wide image fails at once (jobq.Fail): the Failed tab fills
    if t == "webhook.deliver":
        payload = {"url": f"https://hooks.example.net/{rng.choice(['orders', 'billing'])}",
                   "event": rng.choice(["order.paid", "order.shipped"]), "n": n}  # fmt: skip
        return {"type": t, "payload": payload, "queue": "webhooks"}
    if t == "report.build":
        payload = {"report": rng.choice(["daily-sales", "churn", "inventory"]), "n": n}
        return {"type": t, "payload": payload, "queue": "reports", "priority": -10}
    words = rng.choice(["the quick brown fox", "lorem ipsum dolor sit amet", "hello jobq"])
    return {"type": t, "payload": {"text": words}, "queue": "default"}


@handler("demo.generator", max_attempts=1)
def generate(payload: JSONValue, job: Job) -> int:
    """Enqueue a few jobs of the mix, then schedule the next generator run."""
    p = _obj(payload)
    n = p.get("n", 0)
    start = n if isinstance(n, int) else 0
    rng = random.Random()
    count = rng.randint(2, 6)
    with Queue() as q:  # JOBQ_DB is set by `jobq demo`
        q.enqueue_many([make_job(rng, start + i) for i in range(count)])
        q.enqueue("demo.generator", {"n": start + count}, delay=GENERATOR_DELAY,
                  queue="default", priority=-10)  # fmt: skip
    return count
