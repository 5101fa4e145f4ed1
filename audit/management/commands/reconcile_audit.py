import datetime
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.reconcile import (
    FetcherNotConfigured,
    audit_reconcile,
    iter_partner_entries,
    partner_entries_from_lines,
    partner_log_fetcher,
)


def _time(value: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


class Command(BaseCommand):
    help = "Match our partner-call audit events with the partner's log by request id and report differences."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--file", help="partner log: GET /v1/audit JSON, JSON Lines or CSV")
        source.add_argument("--partner-url", help="fetch GET /v1/audit through AUDIT_PARTNER_LOG_FETCHER")
        parser.add_argument("--partner", type=int, help="our partner id (limits our side to its events)")
        parser.add_argument("--from", dest="since", type=_time, required=True)
        parser.add_argument("--to", dest="until", type=_time, required=True)
        parser.add_argument("--skew-threshold-s", type=float, default=None)
        parser.add_argument("--csv-out", help="write the differences here as CSV")
        parser.add_argument("--fail-on-differences", action="store_true", help="exit 1 when anything differs")

    def handle(self, *args, **o):
        if o["since"] >= o["until"]:
            raise CommandError("--from must be before --to")
        if o["file"]:
            with open(o["file"], encoding="utf-8", newline="") as lines:
                report = audit_reconcile(partner_entries=partner_entries_from_lines(lines, name=o["file"]),
                                         partner_id=o["partner"], since=o["since"], until=o["until"],
                                         skew_threshold_s=o["skew_threshold_s"])
        else:
            try:
                fetcher = partner_log_fetcher()
            except FetcherNotConfigured as exc:
                raise CommandError(str(exc)) from exc
            entries = iter_partner_entries(
                fetcher.fetch(partner_id=o["partner"], url=o["partner_url"], since=o["since"], until=o["until"])
            )
            report = audit_reconcile(partner_entries=entries, partner_id=o["partner"], since=o["since"],
                                     until=o["until"], skew_threshold_s=o["skew_threshold_s"])
        self.stdout.write(json.dumps(report.summary()))
        if o["csv_out"]:
            Path(o["csv_out"]).write_text(report.to_csv(), encoding="utf-8")
        if o["fail_on_differences"] and not report.clean:
            sys.exit(1)
