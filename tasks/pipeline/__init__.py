"""The one wiring of the stages (fetch -> parse/normalize -> dedup -> validate -> write/commit)."""
