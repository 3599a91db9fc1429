"""modelops.core."""
