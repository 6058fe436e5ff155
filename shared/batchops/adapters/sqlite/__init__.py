"""The embedded store: eventsourcing's SQLite persistence, the SQLite view store and its two-core replay."""
