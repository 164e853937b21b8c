"""Per-source health: success, failures, back-off, and the operator's view of them."""
