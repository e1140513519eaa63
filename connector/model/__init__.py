"""The recommendation model as serving uses it: a published version's data, the user-state
function and item scores. Here, not in worker/, because the connector (precomputed lists) and
the API compute user states with it; the worker trains the weights and imports it."""
