"""The datasets as the worker reads them: snapshots of the dataset topics in Kafka (reader),
the local cache of Interactions (cache), the Items and Users catalogues (catalog),
Personalize's data selection (selection) and the in-memory Interactions table
(interactions, and MovieLens-100K in that form: movielens). `streamrec rebuild` (rebuild)
replays the same topics into the connector's Redis state.

Imports no other worker subpackage: training, evaluation, the report and the demo all read
their data through it."""
