"""Existing topics in their own shape, mapped to PutEvents, items or users (docs/sources.md)."""
