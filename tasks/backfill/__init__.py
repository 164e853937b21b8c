"""Backfill: historical feed documents (archives, crawls, WARC files) through the poll's stages."""
