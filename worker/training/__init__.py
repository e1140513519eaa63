"""Making and publishing models: the GRU's gradients and training loop (fit), UPDATE's new
items, popularity and item ages, the FULL/UPDATE pipeline, one run against Kafka and Redis
(runs), the same in a child process (isolated) and `streamrec worker`'s schedule.

Imports worker.evaluation (a FULL run measures its model on held-out events before it
publishes) and worker.data, never the report, the demo or the CLI."""
