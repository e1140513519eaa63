"""Local Kafka (KRaft, single node) and Redis processes for development, demos and tests.

They run from the JDK and redis-server on this machine, so nothing here needs Docker.
"""
