"""study package."""
