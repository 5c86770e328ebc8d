"""Kafka wiring: topic catalog, producer client, workers, local broker, lag."""
