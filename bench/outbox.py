"""Outbox benchmark: delivery throughput and commit-to-partner-ack lag, with real processes.

    .venv/bin/python bench/outbox.py [--messages 1000] [--rate 20] [--pool threads] [--concurrency 4]
        [--outage-messages 300] [--outage-s 20] [--batch 20]

Starts its own PostgreSQL and Redis (tests.infra), a dev PKI and the sandbox partner (HTTPS +
mTLS), migrates, and runs real Celery worker + beat processes. Two runs:

- backlog: N face_delete messages are committed while no worker runs, then a worker starts;
  throughput = N / (last partner ack - first partner ack); made twice, with workers delivering
  one message per task (OUTBOX_DELIVERY_BATCH=1, the default) and batches of --batch (20);
- in line: the same, the messages spread over --keys ordering keys (each waits for the one before it
  with its key, as a site's allowlist patches do): with one message per task every next one goes
  through the broker again (the delivered message's successor task);
- steady: the worker runs while messages are committed at --rate per second; lag = the
  partner's log time of the call minus our commit time (same machine clock), p50 / p95 / max;
- in process: the same backlog delivered by calling `outbox_deliver` in this process, no broker,
  batches of 1 and --batch, with the bench's PostgreSQL (no fsync, no synchronous commit) and with
  production's durable commits: what the service itself costs per message, and what a batch's
  single commit saves when a commit waits for the disk;
- outage: the partner goes down, --outage-messages messages are committed while the worker runs
  (the first ones fail and open the circuit breaker, the rest are deferred by it), the partner
  stays down --outage-s seconds, then comes back: the seconds from its return to the first
  message it receives (the breaker's recovery probe) and to the last one, and the drain's
  throughput (first to last ack after the return) against the baseline. Default settings
  (PARTNER_BREAKER_RESET_S, OUTBOX_DISPATCH_INTERVAL_S, the outbox backoff); made with batches of
  1 and of --batch too.

Also prints, as the baseline, the throughput of the same partner call made directly in a
loop over one connection (no outbox, no broker, no database): the ceiling of one caller.
"""

import argparse
import contextlib
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import durable_commits, partner_stack  # noqa: E402


def _parse_at(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Celery:
    def __init__(self, env: dict[str, str], log_dir: Path, pool: str, concurrency: int):
        self.env, self.log_dir, self.pool, self.concurrency = env, log_dir, pool, concurrency
        self.processes: list[subprocess.Popen] = []

    def start(self, *args: str) -> None:
        log = (self.log_dir / f"celery-{len(self.processes)}.log").open("wb")
        self.processes.append(subprocess.Popen([sys.executable, "-m", "celery", "-A", "smarthome", *args], cwd=ROOT,
                                               env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def worker_and_beat(self) -> None:
        self.start("worker", "--pool", self.pool, "--concurrency", str(self.concurrency), "--loglevel", "warning",
                   "--without-gossip", "--without-mingle", "--without-heartbeat")
        self.start("beat", "--loglevel", "warning", "--schedule", str(self.log_dir / "beat-schedule"))

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(20)
        self.processes.clear()


def wait_delivered(expected: int, timeout_s: float) -> None:
    from partners.models import OutboxMessage

    deadline = time.monotonic() + timeout_s
    while OutboxMessage.objects.filter(status="delivered").count() < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {OutboxMessage.objects.filter(status='delivered').count()}/{expected}")
        time.sleep(0.1)


def enqueue(partner, n: int, prefix: str, keys: int | None = None) -> float:
    """Commit one face_delete message (its own ordering key, or one of `keys` shared ones: messages in
    line behind each other); returns the wall-clock time right after the commit."""
    from django.db import transaction

    from partners.outbox.services import outbox_enqueue

    key = f"subject:{prefix}{n if keys is None else n % keys}"
    with transaction.atomic():
        outbox_enqueue(partner_id=partner.pk, operation="face_delete", ordering_key=key,
                       payload={"subject": f"sub_{prefix}{n}"}, idempotency_key=f"{prefix}-{n}")
    return time.time()


def partner_ack_times(sandbox, prefix: str) -> dict[str, float]:
    return {e["request_id"]: _parse_at(e["at"]) for e in sandbox.control.log()["entries"]
            if (e["request_id"] or "").startswith(prefix + "-")}


def direct_baseline(sandbox, partner, calls: int) -> float:
    from partners.client import delete_face, partner_connection_for

    conn = partner_connection_for(partner)
    delete_face(conn, subject="sub_warm", idempotency_key="warm")
    start = time.perf_counter()
    for n in range(calls):
        delete_face(conn, subject=f"sub_direct{n}", idempotency_key=f"direct-{n}")
    return calls / (time.perf_counter() - start)


def backlog_run(celery: Celery, sandbox, partner, messages: int, prefix: str, delivered_before: int,
                keys: int | None = None) -> float:
    """`messages` committed while no worker runs (over `keys` ordering keys, or each its own), then a
    worker drains them: messages/s, first to last ack."""
    for n in range(messages):
        enqueue(partner, n, prefix, keys)
    celery.worker_and_beat()
    wait_delivered(delivered_before + messages, 600)
    celery.stop()
    acks = sorted(partner_ack_times(sandbox, prefix).values())
    return (len(acks) - 1) / (acks[-1] - acks[0])


def in_process_run(partner, messages: int, batch: int, prefix: str) -> tuple[float, float, float]:
    """`messages` delivered by calling outbox_deliver for each in this process, no broker (each message's
    task, held back while they are written, runs in turn): (messages/s, CPU ms and statements per message)."""
    from django.db import connection
    from django.test.utils import override_settings

    from partners.models import OutboxMessage
    from partners.outbox import services

    held = []
    with mock.patch.object(services, "_dispatch", lambda message_id, countdown=None: held.append(message_id)):
        for n in range(messages):
            enqueue(partner, n, prefix)
        ids = list(OutboxMessage.objects.filter(pk__in=held, status="pending").values_list("pk", flat=True))
        started, cpu = time.perf_counter(), time.process_time()
        statements = []

        def counted(execute, sql, params, many, context):
            statements.append(sql)
            return execute(sql, params, many, context)

        with override_settings(OUTBOX_DELIVERY_BATCH=batch), connection.execute_wrapper(counted):
            for message_id in sorted(ids):
                services.outbox_deliver(message_id=message_id)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if OutboxMessage.objects.filter(pk__in=ids, status="pending").exists():
        raise SystemExit("the in-process run left messages undelivered")
    return len(ids) / elapsed, cpu / len(ids) * 1000, len(statements) / len(ids)


def steady_run(celery: Celery, sandbox, partner, messages: int, rate: float, prefix: str,
               delivered_before: int) -> list[float]:
    """`messages` committed at `rate` a second while the worker runs (started and warm first): each
    one's commit -> partner ack lag, ms."""
    celery.worker_and_beat()
    enqueue(partner, 0, f"{prefix}warm")
    wait_delivered(delivered_before + 1, 60)
    delivered_before += 1
    committed: dict[str, float] = {}
    interval = 1.0 / rate
    next_at = time.monotonic()
    for n in range(messages):
        committed[f"{prefix}-{n}"] = enqueue(partner, n, prefix)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    wait_delivered(delivered_before + messages, 600)
    celery.stop()
    acked = partner_ack_times(sandbox, prefix)
    return [(acked[key] - at) * 1000 for key, at in committed.items()]


def outage_run(celery: Celery, sandbox, partner, messages: int, outage_s: float, prefix: str,
               delivered_before: int) -> tuple[float, float, float]:
    """The partner down `outage_s` while `messages` are written, then back: (first ack, last ack) in
    seconds after its return, and the drain's messages/s (first to last ack)."""
    celery.worker_and_beat()
    sandbox.control.down()
    down_at = time.monotonic()
    for n in range(messages):
        enqueue(partner, n, prefix)
    time.sleep(max(0.0, outage_s - (time.monotonic() - down_at)))
    sandbox.control.up()
    back_at = time.time()
    wait_delivered(delivered_before + messages, 600)
    celery.stop()
    acks = sorted(partner_ack_times(sandbox, prefix).values())
    return acks[0] - back_at, acks[-1] - back_at, (len(acks) - 1) / (acks[-1] - acks[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages in the backlog run")
    parser.add_argument("--steady", type=int, default=300, help="messages in the steady run")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="messages committed per second in the steady run (keep it below the throughput)")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--outage-messages", type=int, default=300, help="messages written during the outage")
    parser.add_argument("--outage-s", type=float, default=20.0, help="how long the partner stays down")
    parser.add_argument("--keys", type=int, default=10,
                        help="ordering keys the second backlog is spread over (messages in line behind each other, "
                             "as a site's allowlist patches)")
    parser.add_argument("--batch", type=int, default=20,
                        help="OUTBOX_DELIVERY_BATCH of the workers (the backlog and outage runs are also made with 1, "
                             "one message per task, for comparison)")
    args = parser.parse_args()

    with partner_stack("smarthome-bench-outbox-") as (_pki, sandbox, env, work):
        from partners.models import OutboxMessage, Partner
        from partners.services import partner_credentials_rotate

        partner = Partner.objects.create(name="Sandbox", slug="sandbox", api_base_url=sandbox.base_url)
        partner_credentials_rotate(partner=partner, client_id=sandbox.client_id, client_secret=sandbox.client_secret)

        baseline = direct_baseline(sandbox, partner, 300)
        workers = {size: Celery({**env, "OUTBOX_DELIVERY_BATCH": str(size)}, work, args.pool, args.concurrency)
                   for size in (1, args.batch)}

        def delivered() -> int:
            return OutboxMessage.objects.filter(status="delivered").count()

        backlog = {size: backlog_run(celery, sandbox, partner, args.messages, f"backlog{size}", delivered())
                   for size, celery in workers.items()}
        lines = {size: backlog_run(celery, sandbox, partner, args.messages, f"lines{size}", delivered(), args.keys)
                 for size, celery in workers.items()}

        steady = {size: steady_run(celery, sandbox, partner, args.steady, args.rate, f"steady{size}", delivered())
                  for size, celery in workers.items()}

        in_process = {(durable, size): None for durable in (False, True) for size in (1, args.batch)}
        for durable, size in in_process:
            with durable_commits() if durable else contextlib.nullcontext():
                in_process[durable, size] = in_process_run(partner, min(args.messages, 300), size,
                                                           f"inproc{int(durable)}x{size}")

        outages = {size: outage_run(celery, sandbox, partner, args.outage_messages, args.outage_s, f"outage{size}",
                                    delivered())
                   for size, celery in workers.items()}

    print(f"outbox benchmark ({args.pool} pool x {args.concurrency}, sandbox partner over HTTPS + mTLS on loopback; "
          f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())})")
    print(f"  direct client calls, one caller (baseline) {baseline:>8.0f} calls/s")
    for size, rate in backlog.items():
        print(f"  outbox delivery throughput ({args.messages} backlog), batch {size:>3}  {rate:>8.0f} messages/s"
              f"   ({rate / baseline:.2f} x baseline)")
    for size, rate in lines.items():
        print(f"  outbox delivery throughput ({args.messages} backlog in line on {args.keys} ordering keys), batch "
              f"{size:>3}  {rate:>8.0f} messages/s   ({rate / baseline:.2f} x baseline)")
    for size, lags_ms in steady.items():
        print(f"  commit -> partner ack lag at {args.rate:.0f} msg/s ({args.steady} messages), batch {size:>3}: "
              f"p50 {statistics.median(lags_ms):.1f} ms   p95 {_percentile(lags_ms, 0.95):.1f} ms   "
              f"max {max(lags_ms):.1f} ms")
    for (durable, size), (rate, cpu_ms, statements) in in_process.items():
        print(f"  in process, no broker, batch {size:>3}{', durable commits' if durable else ''}: {rate:>6.0f} "
              f"messages/s ({rate / baseline:.2f} x baseline), {cpu_ms:.1f} ms CPU and {statements:.1f} statements "
              f"a message")
    for size, (probe_s, drained_s, drain_rate) in outages.items():
        print(f"  partner down {args.outage_s:.0f} s with {args.outage_messages} messages written meanwhile, batch "
              f"{size:>3}: first ack {probe_s:.1f} s after its return, all {drained_s:.1f} s after; drain "
              f"{drain_rate:.0f} messages/s ({drain_rate / baseline:.2f} x baseline)")


if __name__ == "__main__":
    main()
