"""Dedup stage: drop the rows a source's seen index already holds and repeats within a batch."""
