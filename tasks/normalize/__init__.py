"""Normalize stage: parsed entries to Arrow rows in the article schema."""
