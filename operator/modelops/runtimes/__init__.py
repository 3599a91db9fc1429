"""modelops.runtimes."""
