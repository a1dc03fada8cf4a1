"""Application plumbing: config registration, instantiation, run wrappers and callbacks."""
