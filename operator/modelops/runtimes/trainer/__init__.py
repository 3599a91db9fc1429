"""modelops.runtimes.trainer."""
