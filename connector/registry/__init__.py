"""The schema registry: Personalize's dataset-schema rules and their durable, versioned store."""
