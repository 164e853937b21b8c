"""Fetch stage: feed URLs to response bodies (conditional GET, politeness, SSRF guard, size caps)."""
