"""Sealing into per-company logs, `verify_audit`, tamper detection, pruning, gaps, keys, concurrency."""

import base64
import datetime
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from audit import signing
from audit.actions import Action, Outcome
from audit.canonical import (
    FIELDS,
    event_leaf_hash,
    jsonl_row,
    sql_columns,
    sql_jsonl_row,
    sql_leaf_hash,
    strings_from_values,
)
from audit.merkle import root
from audit.models import AuditCheckpoint, AuditEvent, AuditLog, AuditSeal
from audit.sealing import audit_seal, audit_seal_pending
from audit.selectors import seal_latest_verified
from audit.services import record
from audit.verification import verify_log
from tests.audit.conftest import log_event_ids, tamper


def events(n: int, company_id=1, **fields):
    return [record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, request_id=f"r{i}", latency_ms=i * 1.5,
                   company_id=company_id, **fields) for i in range(n)]


def leaves_of(checkpoint: AuditCheckpoint) -> list[bytes]:
    blob = bytes(AuditCheckpoint.objects.get(pk=checkpoint.pk).leaf_hashes)
    return [blob[i:i + 32] for i in range(0, len(blob), 32)]


def seal_long_ago(monkeypatch) -> None:
    """Seal what is waiting as if it were 400 days ago (old enough for any retention)."""
    long_ago = timezone.now() - datetime.timedelta(days=400)
    with monkeypatch.context() as patch:
        patch.setattr("django.utils.timezone.now", lambda: long_ago)
        audit_seal()


def last_seal() -> int:
    return AuditSeal.objects.order_by("-pk").values_list("pk", flat=True).first()


@pytest.fixture
def second_key(settings):
    """Rotate: a new AUDIT_SIGNING_KEY, the old one's public key in AUDIT_VERIFY_KEYS."""
    old = signing.public_key_pem()
    seed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    settings.AUDIT_SIGNING_KEY = base64.b64encode(seed).decode()
    settings.AUDIT_VERIFY_KEYS = old
    return old


@pytest.mark.django_db
class TestSealAndVerify:
    def test_seal_assigns_positions_in_id_order_and_signs_the_root(self):
        made = events(5)
        result = audit_seal()
        assert result.sealed == 5
        checkpoint = result.checkpoint
        assert (checkpoint.log.name, checkpoint.first_position, checkpoint.tree_size) == ("company:1", 0, 5)
        assert log_event_ids(1) == [e.pk for e in made]
        leaves = leaves_of(checkpoint)
        assert leaves == [event_leaf_hash(strings_from_values(
            AuditEvent.objects.filter(pk=e.pk).values_list(*FIELDS).get())) for e in made]
        assert checkpoint.root_hash == root(leaves).hex()
        message = signing.checkpoint_message("company:1", 5, checkpoint.root_hash, checkpoint.signed_at)
        assert signing.verify(message, checkpoint.signature)
        assert audit_seal().sealed == 0  # nothing waiting: no new checkpoint
        assert AuditCheckpoint.objects.count() == 1

    def test_each_company_and_the_platform_get_their_own_log(self):
        a = events(3, company_id=1)
        b = events(2, company_id=2)
        c = events(2, company_id=None)
        result = audit_seal()
        assert result.sealed == 7
        sizes = {cp.log.name: cp.tree_size for cp in result.checkpoints}
        assert sizes == {"company:1": 3, "company:2": 2, "platform": 2}
        assert log_event_ids(1) == [e.pk for e in a]
        assert log_event_ids(2) == [e.pk for e in b]
        assert log_event_ids(None) == [e.pk for e in c]
        more = events(2, company_id=2)
        second = audit_seal()
        assert [(cp.log.name, cp.first_position, cp.tree_size) for cp in second.checkpoints] == [("company:2", 2, 4)]
        assert log_event_ids(2) == [e.pk for e in b + more]
        assert set(AuditLog.objects.values_list("name", flat=True)) == {"company:1", "company:2", "platform"}
        report = verify_log()
        assert report.ok, report.problems
        assert (report.logs, report.checkpoints, report.leaves) == (3, 4, 9)

    def test_checkpoints_extend_and_verify(self):
        for batch in (3, 1, 8, 5):
            events(batch)
            audit_seal()
        report = verify_log()
        assert report.ok, report.problems
        assert (report.leaves, report.checkpoints, report.verified_seal) == (17, 4, last_seal())

    def test_batches_respect_the_limit(self):
        events(7)
        assert audit_seal(max_events=3).sealed == 3
        assert audit_seal_pending() == 4
        assert list(AuditCheckpoint.objects.order_by("tree_size").values_list("tree_size", flat=True)) == [3, 7]
        assert verify_log().ok

    def test_verify_command_records_the_verified_seal(self, capsys):
        events(4)
        audit_seal()
        call_command("verify_audit")
        assert "audit log OK" in capsys.readouterr().out
        assert seal_latest_verified()[0] == last_seal()

    def test_one_altered_row_is_detected_at_its_position(self, capsys):
        made = events(10)
        audit_seal()
        tamper("UPDATE audit_event SET outcome = 'denied' WHERE id = %s", [made[6].pk])
        report = verify_log()
        assert not report.ok
        assert report.first_bad == {"company:1": 6}
        with pytest.raises(SystemExit) as exit_info:
            call_command("verify_audit")
        assert exit_info.value.code == 1
        assert "first bad position: company:1 at 6" in capsys.readouterr().out

    def test_an_event_moved_to_another_company_is_detected(self):
        made = events(4)
        audit_seal()
        tamper("UPDATE audit_event SET company_id = 2 WHERE id = %s", [made[2].pk])
        report = verify_log()
        assert not report.ok
        assert report.first_bad["company:1"] == 2

    def test_one_deleted_row_is_detected(self):
        made = events(10)
        audit_seal()
        tamper("DELETE FROM audit_event WHERE id = %s", [made[3].pk])
        report = verify_log()
        assert not report.ok
        assert report.first_bad_position == 3

    def test_deleted_row_and_its_leaf_is_detected(self):
        made = events(10)
        audit_seal()
        checkpoint = AuditCheckpoint.objects.get()
        leaves = leaves_of(checkpoint)
        tamper("UPDATE audit_log_checkpoint SET leaf_hashes = %s", [b"".join(leaves[:3] + leaves[4:])])
        tamper("DELETE FROM audit_event WHERE id = %s", [made[3].pk])
        report = verify_log()
        assert not report.ok
        assert any("holds 9 leaves for 10 positions" in p for p in report.problems)
        assert any("root hash does not match" in p for p in report.problems)

    def test_reordered_pair_is_detected(self):
        events(10)
        audit_seal()
        leaves = leaves_of(AuditCheckpoint.objects.get())
        leaves[4], leaves[5] = leaves[5], leaves[4]
        tamper("UPDATE audit_log_checkpoint SET leaf_hashes = %s", [b"".join(leaves)])
        report = verify_log()
        assert not report.ok
        assert report.first_bad_position == 4

    def test_rows_altered_with_rewritten_leaf_hashes_are_caught_by_the_signed_root(self):
        events(4)
        audit_seal()
        made = events(6)
        audit_seal()
        second = AuditCheckpoint.objects.get(tree_size=10)
        tamper("UPDATE audit_event SET outcome = 'denied' WHERE id IN (%s, %s)", [made[1].pk, made[2].pk])
        rewritten = [event_leaf_hash(strings_from_values(values))
                     for values in AuditEvent.objects.filter(pk__in=[e.pk for e in made]).order_by("id")
                     .values_list(*FIELDS)]
        tamper("UPDATE audit_log_checkpoint SET leaf_hashes = %s WHERE id = %s", [b"".join(rewritten), second.pk])
        report = verify_log()
        assert not report.ok
        assert report.verified_seal == second.seal_id - 1
        assert report.first_bad_position == 4  # the change lies in positions 4..9
        assert any("root hash does not match" in p for p in report.problems)

    def test_forged_checkpoint_is_detected(self):
        events(6)
        audit_seal()
        forged_root = "ab" * 32
        other_key = Ed25519PrivateKey.generate()
        checkpoint = AuditCheckpoint.objects.get()
        message = signing.checkpoint_message("company:1", 6, forged_root, checkpoint.signed_at)
        signature = base64.b64encode(other_key.sign(message)).decode()
        tamper("UPDATE audit_log_checkpoint SET root_hash = %s, signature = %s", [forged_root, signature])
        report = verify_log()
        assert not report.ok
        assert any("signature invalid" in p for p in report.problems)
        assert any("root hash" in p for p in report.problems)

    def test_checkpoint_with_valid_root_but_bad_signature_is_detected(self):
        events(3)
        audit_seal()
        tamper("UPDATE audit_log_checkpoint SET signature = %s", [base64.b64encode(b"x" * 64).decode()])
        report = verify_log()
        assert not report.ok
        assert report.problems == ["company:1: checkpoint 3: signature invalid (a change in positions 0..2)"]

    def test_pruning_keeps_the_log_verifiable(self, capsys, monkeypatch):
        old = events(6)
        seal_long_ago(monkeypatch)
        young = events(3)
        audit_seal()
        call_command("prune_audit", "--older-than-days", "30")
        assert "company:1: pruned 6 events below position 6" in capsys.readouterr().out
        assert AuditEvent.objects.filter(pk__in=[e.pk for e in old]).count() == 0
        assert AuditEvent.objects.filter(pk__in=[e.pk for e in young]).count() == 3
        audit_seal_pending()
        report = verify_log()
        assert report.ok, report.problems
        pruned = AuditEvent.objects.get(action=Action.AUDIT_PRUNED)
        assert (pruned.object_ref, pruned.company_id) == ("below:6", 1)

    def test_an_event_deleted_above_the_pruning_boundary_is_still_detected(self, monkeypatch):
        events(2)
        seal_long_ago(monkeypatch)
        young = events(3)
        audit_seal()
        call_command("prune_audit", "--older-than-days", "30")
        tamper("DELETE FROM audit_event WHERE id = %s", [young[1].pk])
        report = verify_log()
        assert not report.ok
        assert report.first_bad == {"company:1": 3}


@pytest.mark.django_db
class TestKeys:
    def test_old_checkpoints_verify_after_a_key_rotation(self, second_key):
        signing._verify_keys.cache_clear()
        events(3)
        old_key_id = signing.key_id(signing.load_public_key_pem(second_key))
        # the first seal was signed before the rotation: sign it with the old key by hand
        with pytest.MonkeyPatch.context() as patch:
            old_private = signing._dev_key()
            patch.setattr(signing, "private_key", lambda: old_private)
            audit_seal()
        assert AuditCheckpoint.objects.get().key_id == old_key_id
        events(2)
        audit_seal()
        key_ids = list(AuditCheckpoint.objects.order_by("tree_size").values_list("key_id", flat=True))
        assert key_ids == [old_key_id, signing.key_id(signing.public_key())]
        report = verify_log()
        assert report.ok, report.problems

    def test_without_the_retired_key_old_checkpoints_fail(self, second_key, settings):
        events(3)
        with pytest.MonkeyPatch.context() as patch:
            old_private = signing._dev_key()
            patch.setattr(signing, "private_key", lambda: old_private)
            audit_seal()
        settings.AUDIT_VERIFY_KEYS = ""
        report = verify_log()
        assert not report.ok
        assert any("signed by unknown key" in p for p in report.problems)

    def test_production_is_an_explicit_setting_not_a_module_name(self, settings):
        settings.AUDIT_SIGNING_KEY = ""
        settings.PRODUCTION = True
        assert not str(settings.SETTINGS_MODULE or "").endswith(".production")
        with pytest.raises(ImproperlyConfigured, match="AUDIT_SIGNING_KEY"):
            signing.private_key()
        settings.PRODUCTION = False
        assert signing.private_key() is not None  # the development key

    def test_public_key_endpoint_lists_the_keyring(self, second_key, client):
        signing._verify_keys.cache_clear()
        body = client.get("/api/v1/audit/public-key").json()
        assert body["key_id"] == signing.key_id(signing.public_key())
        assert [k["current"] for k in body["keys"]] == [True, False]
        assert body["keys"][1]["public_key_pem"].strip() == second_key.strip()


@pytest.mark.django_db
class TestGaps:
    def _event_in_a_gap(self):
        """Seal 3 events, then make one 'appear' with an id the seal skipped (a late commit)."""
        made = events(3)
        tamper("DELETE FROM audit_event WHERE id = %s", [made[1].pk])
        audit_seal()
        seal = AuditSeal.objects.get()
        assert seal.gaps[-1] == [made[1].pk, made[1].pk]  # (earlier ids: other tests' rolled-back rows)
        tamper("INSERT INTO audit_event (id, occurred_at, actor_kind, actor_ref, action, outcome, object_type, "
               "object_ref, device_ref, reason, request_id, source_ip, origin_request_id, company_id) "
               "SELECT %s, occurred_at, actor_kind, actor_ref, action, outcome, object_type, object_ref, "
               "device_ref, reason, 'late', source_ip, origin_request_id, company_id FROM audit_event WHERE id = %s",
               [made[1].pk, made[0].pk])
        return made

    def test_an_event_committed_after_its_seal_is_sealed_late_exactly_once(self):
        made = self._event_in_a_gap()
        second = audit_seal()
        assert second.sealed == 1
        assert second.seal.late == [made[1].pk]
        assert log_event_ids(1) == [made[0].pk, made[2].pk, made[1].pk]
        assert audit_seal().sealed == 0
        assert verify_log().ok

    def test_a_gap_given_up_is_reported_and_swept(self, settings):
        made = self._event_in_a_gap()
        settings.AUDIT_SEAL_GAP_TTL_S = 0
        assert audit_seal().sealed == 0
        report = verify_log()
        assert not report.ok
        assert report.problems == [f"event {made[1].pk} committed after its seal and was never sealed "
                                   "(run `manage.py seal_audit --sweep`)"]
        call_command("seal_audit", "--sweep")
        assert verify_log().ok


@pytest.mark.postgres
@pytest.mark.django_db
def test_sql_and_python_canonical_strings_agree():
    record(action=Action.ACCESS_DECISION, outcome=Outcome.DENIED, actor_ref="subject:ab12", partner_id=2,
           company_id=3, building_id=4, device_ref="gate.1", reason="no_grant", request_id="r:1",
           source_ip="::ffff:10.0.0.1", latency_ms=0.0004, http_status=403, origin_request_id="orig-1")
    record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, latency_ms=123456.7891)
    record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql_columns('e')}, e.leaf_v2 FROM audit_event e ORDER BY id")  # noqa: S608
        from_sql = [tuple(row) for row in cursor.fetchall()]
    from_python = [strings_from_values(v) for v in AuditEvent.objects.order_by("id").values_list(*FIELDS)]
    assert [row[:-1] for row in from_sql] == from_python
    # the generated column holds exactly the Python leaf hash
    assert [bytes(row[-1]) for row in from_sql] == [event_leaf_hash(s) for s in from_python]
    # and the export's JSON Lines rows are byte for byte what the Python path writes
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql_jsonl_row('e')} FROM audit_event e ORDER BY id")  # noqa: S608
        assert [row[0] for row in cursor.fetchall()] == [jsonl_row(s) for s in from_python]


def test_the_generated_column_of_migration_0004_is_the_canonical_leaf():
    import importlib

    migration = importlib.import_module("audit.migrations.0006_per_company_logs")
    assert sql_leaf_hash("", generated=True) == migration.LEAF_V2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_late_commit_with_lower_id_is_sealed_exactly_once_in_the_next_seal():
    """Writer A takes an id, writer B takes a higher one and commits; a seal runs; A commits later."""
    a_has_id = threading.Event()
    a_may_commit = threading.Event()
    ids = {}

    def writer_a():
        try:
            with transaction.atomic():
                ids["a"] = record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, request_id="late").pk
                a_has_id.set()
                a_may_commit.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=writer_a)
    thread.start()
    assert a_has_id.wait(10)
    ids["b"] = record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, request_id="early").pk
    assert ids["a"] < ids["b"]
    first = audit_seal()
    assert first.sealed == 1
    assert log_event_ids(None) == [ids["b"]]
    a_may_commit.set()
    thread.join(10)
    second = audit_seal()
    assert second.sealed == 1
    assert log_event_ids(None) == [ids["b"], ids["a"]]  # position 1, in the platform log
    assert audit_seal().sealed == 0
    assert verify_log().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_and_sealers_seal_every_event_exactly_once():
    writers, per_writer = 4, 60
    errors = []

    def write(n):
        try:
            for i in range(per_writer):
                with transaction.atomic():
                    record(action=Action.PARTNER_OPEN, outcome=Outcome.SUCCESS, request_id=f"w{n}-{i}",
                           company_id=n % 2 or None)
                    if i % 7 == 0:  # hold some transactions open while others commit and seal
                        threading.Event().wait(0.01)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    stop = threading.Event()

    def seal_loop():
        try:
            while not stop.is_set():
                audit_seal()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    sealers = [threading.Thread(target=seal_loop) for _ in range(2)]
    for t in threads + sealers:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    for t in sealers:
        t.join(60)
    assert not errors
    audit_seal_pending()
    total = writers * per_writer
    assert AuditEvent.objects.count() == total
    in_logs = log_event_ids(None) + log_event_ids(1)
    assert sorted(in_logs) == sorted(AuditEvent.objects.values_list("id", flat=True))  # each exactly once
    sizes = {cp.log.name: cp.tree_size for cp in AuditCheckpoint.objects.select_related("log")
             .order_by("log_id", "tree_size")}
    assert sizes == {"platform": total // 2, "company:1": total // 2}
    report = verify_log()
    assert report.ok, report.problems
    assert report.checkpoints == AuditCheckpoint.objects.count() > 2
