"""dataward: a governed, tamper-evident registry and poisoning gate for ML training data."""

__version__ = "0.1.0"
