"""Who spoke when: one speaker per channel, or speakers from voices clustered per session."""
