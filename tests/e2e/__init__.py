"""End-to-end tests against real local services (marked e2e)."""
