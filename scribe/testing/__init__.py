"""Tools for tests and demos, never loaded by the runtime: random-weight Whisper models in
the real CTranslate2 format."""
