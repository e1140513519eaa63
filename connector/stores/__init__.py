"""Storage behind small interfaces: what the ingest path reads from and writes to Redis."""
