"""The datasets as the worker reads them: snapshots of the dataset topics in Kafka, the local
cache of Interactions, the Items and Users catalogues, Personalize's data selection and the
in-memory Interactions table (and MovieLens-100K in that form).

Imports no other worker subpackage: training, evaluation, the report and the demo all read
their data through it."""
