"""streamrec connector: ingests events from Kafka, validates them, and keeps serving state in Redis.

It also owns the contracts the other deployables share (settings, dataset schemas and their
registry, the local development services), so `worker` may import from here but never the
other way round.
"""
