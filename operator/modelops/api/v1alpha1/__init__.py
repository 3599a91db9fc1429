"""The modelops.dev/v1alpha1 kinds: Model, ModelVersion, TrainingRun and DriftPolicy."""
