"""Featurizers: one per column kind, turning canonical Arrow columns into dense float32 vectors."""

from dataward.gates.features import embedding, hashed, image, tabular, text
from dataward.gates.features.base import DEFAULTS, Featurizer, featurizers, make_featurizer
from dataward.gates.features.pipeline import FeaturePipeline

__all__ = [
    "DEFAULTS",
    "FeaturePipeline",
    "Featurizer",
    "embedding",
    "featurizers",
    "hashed",
    "image",
    "make_featurizer",
    "tabular",
    "text",
]
