"""Forward taint through transformations: which records were made, step after step, from suspect ones.

Pure computation over the record lineage each transformation recorded (output record -> the input
records it came from); the service feeds it and decides what to hold out.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    """One transformation's record lineage: which contribution carried its output, and its links."""

    contribution_id: str
    dataset_id: str
    links: Sequence[Mapping[str, Any]]
    """Rows ``{record_id, parent_id, ...}``: one per (output record, parent record) pair."""


def derived_from(seeds: Iterable[str], steps: Iterable[Step]) -> dict[str, set[str]]:
    """Every record made, transitively, from a record of ``seeds``: record id -> the contributions of
    the steps that made it from a suspect parent.

    A step's output record that is itself one of its own parents (a dedup's survivor, a filter's kept
    record) is the content of that parent kept as it was: it is suspect only if that parent is, not
    because a suspect duplicate was folded into it.
    """
    children: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for step in steps:
        parents_of: dict[str, set[str]] = defaultdict(set)
        for link in step.links:
            parents_of[link["record_id"]].add(link["parent_id"])
        for child, parents in parents_of.items():
            if child in parents:
                continue  # a kept copy: its content is that of its own (clean or suspect) self
            for parent in parents:
                children[parent].append((child, step.contribution_id))
    seed_set = set(seeds)
    suspect = set(seed_set)
    made: dict[str, set[str]] = {}
    frontier = deque(suspect)
    while frontier:
        record = frontier.popleft()
        for child, contribution in children.get(record, ()):
            made.setdefault(child, set()).add(contribution)
            if child not in suspect:
                suspect.add(child)
                frontier.append(child)
    # A seed made again from another seed is a seed, not a derived record.
    return {r: cs for r, cs in made.items() if r not in seed_set}


__all__ = ["Step", "derived_from"]
