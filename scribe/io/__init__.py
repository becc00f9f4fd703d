"""Where sessions come from and transcripts go: filesystems (storage), listing and
manifests (sessions), a session's files (outputs, formats) and the job's summary."""
