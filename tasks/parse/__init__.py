"""Parse stage: a fetched body to feed entries (RSS, Atom, RDF, JSON Feed)."""
