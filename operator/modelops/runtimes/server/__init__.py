"""modelops.runtimes.server."""
