"""feedlake pipeline stages: plain, typed functions with no orchestration (no prefect import)."""
