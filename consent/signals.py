"""Signals the consent app sends for apps above it (it must not import them).

`face_subjects_revoked(partner_id=, resident_id=, subject_ids=, reason=)`: a face consent was
revoked (by the resident, an administrator, expiry, move-out or deletion), so the partner must
no longer recognise these pseudonymous subject ids - the access app removes them from the
partner's offline allowlists. Sent inside `consent_revoke`'s transaction; receivers run in it.

`face_subject_enrolled(partner_id=, resident_id=, subject_id=)`: the partner acknowledged a face
enrolment and consent has marked it delivered - the access app adds the subject to the
partner's offline allowlists. Sent inside the outbox delivery's transaction, after the status
change the receivers read.
"""

from django.dispatch import Signal

face_subjects_revoked = Signal()
face_subject_enrolled = Signal()
