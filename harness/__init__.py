"""Test and demo harness: a local Kubernetes control plane and node agents. Not shipped."""
