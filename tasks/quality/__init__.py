"""Data quality for people: each run's validation results as JSON, markdown and an HTML page with history."""
