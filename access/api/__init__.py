"""Resident API (/api/v1/): one module per topic, one view class per operation."""
