"""Models of the partners app."""
