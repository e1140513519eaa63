"""streamrec worker: reads the Interactions dataset, trains the User-Personalization model,
evaluates it and publishes versioned item embeddings to Redis."""
