"""The application layer: config, the App that owns model, engine and store, video ingestion, CLI commands.

Kept import-light on purpose: `omnivideo_app.errors` is imported by every layer.
"""
