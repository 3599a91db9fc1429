"""``kubectl modelops``, a kubectl plugin: a separate program (no kopf, no operator code) that
reads the modelops kinds with the official client and does what a person would do by hand."""
