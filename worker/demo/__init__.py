"""`streamrec demo`: from nothing to live recommendations on local defaults. The steps (run),
MovieLens-100K cut into an imported past and a replayed present (data), the connector, API
and worker it starts as subprocesses (processes), the live replay (replay) and what it shows
(view).

Imports worker.training (the demo's FULL run) and worker.data (MovieLens-100K); only the CLI
imports it."""
