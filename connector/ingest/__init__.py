"""The ingest path: records from Kafka to Interactions rows, dead letters and Redis effects.

Pure functions (decode, limits, rows, fingerprint, plan) decide; stores perform the effects.
"""
