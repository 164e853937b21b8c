"""feedlake pipeline stages and features: plain, typed functions with no orchestration (no prefect import).

One folder per stage (fetch, parse, normalize, dedup, validate, lake) and per feature beside them;
``pipeline`` composes the stages; ``values`` holds the values passed between them.
"""
