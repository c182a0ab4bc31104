"""Poisoning-aware validation gates: featurizers, detectors and verdicts. Pure computation."""
