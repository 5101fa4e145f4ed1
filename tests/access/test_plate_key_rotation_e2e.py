"""End to end: a partner's keys are rotated while its barriers keep deciding cars.

The sandbox partner's cameras read plates and ask our partner API (through nginx, mTLS, a
certificate-bound token) for a decision, continuously, from a thread; meanwhile a staff member
hands the partner its key material, rotates, hands over the new material (the sandbox opens it
with its JWE key and switches), and retires the old key. No legitimate car is denied at any
moment, the partner's allowlist carries both tokens during the overlap, and afterwards a token
under the old key is unknown."""

import threading
import time

import pytest

from access.models import VehiclePlateToken
from access.plates import plate_token
from access.services.allowlist import site_ref
from audit.models import AuditEvent
from partners import services as partner_services
from partners.models import PartnerCredentials
from partners.outbox.services import outbox_bring_forward
from tests import factories
from tests.partners import outbox_fixtures

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.django_db(transaction=True)]
client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner
linked_sandbox_partner = outbox_fixtures.linked_sandbox_partner

CARS = 6
GATE = "gate-rotation"
ROUND_TIMEOUT_S = 60


class Barrier:
    """A thread that brings every car to the gate in turn, for as long as it runs, and records
    each answer with the phase of the rotation it was asked in."""

    def __init__(self, control, plates: list[str]):
        self.control = control
        self.plates = plates
        self.phase = "before"
        self.answers: list[tuple[str, str, dict]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self._stop.is_set():
                for plate in self.plates:
                    phase = self.phase
                    self.answers.append((phase, plate, self.control.arrival(GATE, "plate", plate=plate)))
        except BaseException as error:  # reported by the test (wait_for_round, the end)
            self.errors.append(error)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)

    def now(self, phase: str) -> None:
        """Arrivals from here on belong to `phase`; returns once every car was decided in it."""
        self.phase = phase
        self.wait_for_round()

    def wait_for_round(self) -> None:
        deadline = time.monotonic() + ROUND_TIMEOUT_S
        while {plate for phase, plate, _ in self.answers if phase == self.phase} != set(self.plates):
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"the barrier stalled in phase {self.phase}"
            time.sleep(0.05)


def allowlisted_plates(control, building) -> set[str]:
    entries = control.state()["allowlists"][site_ref(building.pk)]["entries"]
    return {entry["token"] for entry in entries if entry["type"] == "plate"}


def test_rotating_the_keys_while_the_sandbox_keeps_deciding_denies_no_car(linked_sandbox_partner, clean_sandbox):
    partner = linked_sandbox_partner
    control = clean_sandbox.control
    staff = factories.staff_user(superuser=True)
    building = factories.building()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    factories.device(building_=building, partner_=partner, kind="barrier", partner_device_ref=GATE)
    control.put_device(GATE, online=True)
    vehicles = []
    for _ in range(CARS):
        resident = factories.resident(unit_=factories.unit(building_=building))
        factories.grant(resident_=resident, building_=building)
        vehicles.append(factories.vehicle(resident_=resident))
    plates = [vehicle.plate for vehicle in vehicles]
    old = PartnerCredentials.objects.current().get(partner=partner)
    installed = control.install_key_material(partner_services.partner_credentials_export(partner=partner,
                                                                                         actor=staff).jwe)
    assert installed["credentials_version"] == old.version

    with Barrier(control, plates) as barrier:
        barrier.wait_for_round()
        new = partner_services.partner_credentials_rotate(partner=partner, actor=staff).credentials
        old_tokens = {plate_token(key=old.plate_token_key_bytes(), plate=plate) for plate in plates}
        new_tokens = {plate_token(key=new.plate_token_key_bytes(), plate=plate) for plate in plates}
        assert set(VehiclePlateToken.objects.filter(partner=partner).values_list("token", flat=True)) == (
            old_tokens | new_tokens)
        barrier.now("overlap")

        export = partner_services.partner_credentials_export(partner=partner, actor=staff)
        installed = control.install_key_material(export.jwe)
        # what the two people compare over the phone
        assert installed["fingerprints"]["plate_token_key"].replace(" ", "") == new.plate_token_key_fingerprint
        assert installed["previous_plate_key"]["credentials_version"] == old.version
        barrier.now("switched")
        outbox_bring_forward(partner_id=partner.pk)  # anything that waited for the new client secret
        assert allowlisted_plates(control, building) == old_tokens | new_tokens

        retired = partner_services.partner_plate_key_retire(partner=partner, actor=staff)
        assert [credentials.version for credentials in retired] == [old.version]
        barrier.now("retired")
    assert not barrier.errors, barrier.errors

    by_phase: dict[str, int] = {}
    for phase, _, answer in barrier.answers:
        by_phase[phase] = by_phase.get(phase, 0) + 1
        assert (answer["decision"], answer["reason"], answer["source"]) == ("allow", "granted", "smarthome"), (
            phase, answer)
    assert set(by_phase) == {"before", "overlap", "switched", "retired"}
    assert all(count >= CARS for count in by_phase.values()), by_phase
    assert {a["plate_key_version"] for phase, _, a in barrier.answers if phase == "before"} == {old.version}
    assert {a["plate_key_version"] for phase, _, a in barrier.answers if phase == "retired"} == {new.version}

    for token in sorted(old_tokens):  # a camera still on the old key
        answer = control.arrival(GATE, "plate", token)
        assert (answer["decision"], answer["reason"], answer["source"]) == ("deny", "unknown_credential", "smarthome")
    assert allowlisted_plates(control, building) == new_tokens
    steps = list(AuditEvent.objects.filter(object_type="partner_credentials", partner_id=partner.pk,
                                           reason__in=["rotated", "handed_over", "retired"])
                 .order_by("id").values_list("object_ref", "reason"))
    old_ref, new_ref = f"partner_credentials:{old.pk}", f"partner_credentials:{new.pk}"
    assert steps[-4:] == [(old_ref, "handed_over"), (new_ref, "rotated"), (new_ref, "handed_over"),
                          (old_ref, "retired")]
