"""The demo's local snapshot server (bundled real feed captures served over HTTP)."""
