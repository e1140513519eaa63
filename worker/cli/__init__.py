"""Commands of the worker, added to `streamrec` through the `streamrec.commands` entry points
so the connector's CLI never imports the worker."""
