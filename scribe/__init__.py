"""ray-scribe's engine: everything that turns a recording into a transcript.

The engine never imports ``ray``; ``ray_jobs`` (batch) and ``serve_app`` (online) wrap
the same classes so both paths run the same code.
"""

__version__ = "0.1.0"
