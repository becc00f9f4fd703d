"""The command line: one front (``scribe``) for the engine, the batch job and the service."""
