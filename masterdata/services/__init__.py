"""Writes of the master-data app: `records` (a source system's batch, by external id and
version), `imports` (the admin's spreadsheet import). Both write through the access services."""
