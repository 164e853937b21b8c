"""The lake: the only room that touches a store (objects, layout, lease, Parquet files, commits, state)."""
