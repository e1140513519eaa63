"""`streamrec evaluate`'s report: the figures of a model against the baselines (figures) and
the report files, markdown, PNG charts and JSON (render).

Imports worker.training (it trains our model for the MovieLens benchmark and splits a group's
data as its FULL run did), worker.evaluation and worker.data; only the CLI imports it."""
