"""The hit pipeline: small, pure steps that turn what a client sent into a hit ready to
store. `process.py` calls them in order; each module holds one step."""
