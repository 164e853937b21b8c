"""Prefect orchestration for feedlake: thin flows over the plain functions in ``tasks``."""
