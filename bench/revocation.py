"""Revocation benchmark: time from the revoke call returning to the partner's deletion ack.

    .venv/bin/python bench/revocation.py [--residents 100] [--rate 10] [--pool threads] [--concurrency 4]

Starts its own PostgreSQL and Redis, a dev PKI and the sandbox partner (HTTPS + mTLS), migrates
and runs real Celery worker + beat processes on Redis. N residents give consent and enrol a
face (delivered by the worker first); then their consents are revoked at --rate per second.
For each: t0 = `consent_revoke` returned (committed); ack = the partner's log time of the
face DELETE, and receipt = when our DeletionReceipt was recorded (same machine clock).
Prints p50 / p95 / max of both.
"""

import argparse
import datetime
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import partner_stack  # noqa: E402
from bench.outbox import Celery, _parse_at, _percentile  # noqa: E402


def photo(n: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (400, 400), (n % 256, (n * 7) % 256, 90))
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="revocations per second")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with partner_stack("smarthome-bench-revocation-") as (pki, sandbox, env, work):
        from consent import services
        from consent.models import DeletionReceipt, FaceEnrolment
        from partners.models import Partner
        from partners.services import partner_credentials_rotate
        from tests import factories

        partner = Partner.objects.create(name="Sandbox", slug="sandbox", api_base_url=sandbox.base_url)
        partner_credentials_rotate(partner=partner, client_id=sandbox.client_id, client_secret=sandbox.client_secret,
                                   partner_public_key_pem=pki["partner-jwe.pub.pem"].read_text())
        building = factories.building()
        factories.contract(partner_=partner, company_=building.company, buildings=[building])
        text = services.consent_text_publish(version="bench", body="Согласие на обработку изображения лица.")
        celery = Celery(env, work, args.pool, args.concurrency)
        celery.worker_and_beat()
        try:
            consents = []
            for n in range(args.residents):
                resident = factories.resident(company_=building.company)
                consents.append(services.consent_give(resident_id=resident.pk, company_id=resident.company_id,
                                                      partner=partner, text=text, building_id=building.pk))
                services.face_enrol(resident_id=resident.pk, partner=partner, photo=photo(n))
            wait_for(lambda: FaceEnrolment.objects.filter(status="delivered").count() == args.residents, 600,
                     "enrolments")
            revoked_at: dict[str, float] = {}
            interval, next_at = 1.0 / args.rate, time.monotonic()
            for consent in consents:
                subject = services.subject_id_for(partner_id=partner.pk, resident_id=consent.resident_id)
                services.consent_revoke(consent=consent)
                revoked_at[subject] = time.time()
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
            wait_for(lambda: DeletionReceipt.objects.count() == args.residents, 600, "deletion receipts")
        finally:
            celery.stop()
        acks = {e["subject"]: _parse_at(e["at"]) for e in sandbox.control.log()["entries"]
                if e["operation"] == "face.delete"}
        receipts = {r.subject_id: r.confirmed_at.timestamp() for r in DeletionReceipt.objects.all()}
        ack_ms = [(acks[s] - t) * 1000 for s, t in revoked_at.items()]
        receipt_ms = [(receipts[s] - t) * 1000 for s, t in revoked_at.items()]
        leaked = [e for e in sandbox.control.log()["entries"]
                  if e["operation"] == "face.enrol" and e["subject"] in revoked_at
                  and _parse_at(e["at"]) > revoked_at[e["subject"]]]

    print(f"revocation benchmark ({args.residents} residents, {args.rate:.0f} revocations/s, Celery {args.pool} x "
          f"{args.concurrency} on Redis, sandbox partner over HTTPS + mTLS on loopback)")
    for label, values in (("revoke returned -> partner deletion ack", ack_ms),
                          ("revoke returned -> deletion receipt stored", receipt_ms)):
        print(f"  {label:<44} p50 {statistics.median(values):7.1f} ms   p95 {_percentile(values, 0.95):7.1f} ms"
              f"   max {max(values):7.1f} ms")
    print(f"  face enrolments reaching the partner after revoke: {len(leaked)}")
    print(f"  ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)")


if __name__ == "__main__":
    main()
