"""Selectors: every read in the workflows app returns a tenant-scoped, permission-checked result."""
