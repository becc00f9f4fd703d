"""The test tiers; a package so that package-scoped fixtures end with their tier."""
