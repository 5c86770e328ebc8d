"""The logic the stream agents call, free of Kafka: prompts, state, batching, updates."""
