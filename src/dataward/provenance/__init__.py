"""Provenance beyond single contributions: the code identity of a transformation step, and in-toto
attestations of a version's whole history (sources, contributions, transformations, gates, approvals)."""
