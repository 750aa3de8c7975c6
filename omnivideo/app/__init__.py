"""The application layer: config, the App that owns model, engine and store, video ingestion, known models."""
