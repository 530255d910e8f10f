"""probing package."""
