"""The online tier: one Serve for the package, shut down when its last test ends."""
