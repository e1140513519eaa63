"""Serving: the current model in memory, recommendations and rankings, precomputed lists."""
