"""Validate stage: Great Expectations checks over new rows, and the data-quality reports."""
