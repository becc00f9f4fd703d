"""Thin Ray Serve adapters over the ``scribe`` engine: an OpenAI-compatible online service.

``protocol`` holds the wire models (no Ray, no model runtime); ``app`` builds the Serve
application (``serve run serve_app/config.yaml``).
"""
