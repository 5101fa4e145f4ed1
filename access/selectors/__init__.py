"""Reads of the access app, one module per topic; each is scoped to its caller and returns data or
raises a domain error of access.errors (the API layer turns those into HTTP).

- staff.py: the management companies a staff user works for (the COMPANY_RESOLVER of
  core.security.tenancy, which every company-scoped read goes through);
- residents.py: the resident behind an app user; the buildings a resident belongs to;
- devices.py, vehicles.py, guest_passes.py, notifications.py, history.py: what the resident
  API shows a resident of their own.

Whether a subject may use a device is not a read here: it is access.policy's.
"""
