"""Thin Ray Data adapters over the ``scribe`` engine, and the ``ray job`` entrypoint."""
