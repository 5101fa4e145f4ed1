"""Writes of the access app, one module per entity; each service takes keyword arguments only,
validates (full_clean plus the cross-row checks its docstring names), runs in one transaction
and records its audit event in it. `actor` is the Django user acting (staff or the resident),
None for the system.

- companies.py: management companies, staff memberships, buildings, flats;
- residents.py, residencies.py (move-in, move-out), grants.py, devices.py, vehicles.py;
- plate_tokens.py: the partners' plate tokens of every car;
- allowlist.py: the partners' offline allowlists; decisions.py: the partner's access decisions;
- opening.py, video.py, guest_passes.py, notifications.py: what residents do in the app;
- auditing.py: the admin-change audit record the services above share.

Which subject may use which device is access.policy's rule, not a service's.
"""
