"""A dataset the caller may not see answers exactly as one that does not exist, in the folder and over
HTTP (docs/server.md: 404 "also for things the caller may not see").

Attack: ``carol`` (contributor on ``pub``) and ``dave`` (reader on ``pub``) probe for ``secret``, a
dataset only the admin has a grant on: by status code and message (403 against 404), by counting its
contributions (``secret#1`` against ``secret#9``), by a refusal that names it (``quarantine
principal:admin`` by ``olga``, owner of ``pub``), and by tracing a source only ``secret`` uses. Each
answers as for nothing at all; a refusal on what the caller can see stays a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataward.api import WardAPI
from dataward.client import HTTPWard
from dataward.domain.errors import AccessDenied, DatawardError, InputError, NotFound
from dataward.domain.schema import Schema
from dataward.service.ward import Ward
from tests.helpers import NO_APPROVALS_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served

MODES = ("embedded", "http")


@pytest.fixture(scope="module")
def keys(served: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Datasets ``pub`` and ``secret`` (with a clean validation set ``secret-val``), one contribution
    and version each; ``secret``'s came from source ``internal:secret``."""
    root = tmp_path_factory.mktemp("hidden")
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    for name in ("pub", "secret"):
        admin.create_dataset(name, Schema.parse(label, specs))
        admin.set_policy(name, NO_APPROVALS_POLICY)
        batch = write_csv(root / f"{name}.csv", wine_rows(0, 20, shuffled=True))
        admin.merge(admin.contribute(name, batch, source=f"internal:{name}")["ref"])
    admin.create_dataset("secret-val", Schema.parse(label, specs), validation_for="secret")
    for who, role in (("carol", "contributor"), ("dave", "reader"), ("olga", "owner")):
        admin.create_principal(who)
        admin.grant(who, role, "dataset:pub")
    return {who: admin.issue_key(who)["key"] for who in ("carol", "dave", "olga")}


def _ward(served: Served, mode: str, key: str) -> WardAPI:
    return Ward.open(served.ward, key=key) if mode == "embedded" else HTTPWard(served.url, key=key)


def _answer(call: Callable[[], Any]) -> tuple[type, str, str | None]:
    with pytest.raises(DatawardError) as info:
        call()
    return type(info.value), info.value.message, info.value.hint


@pytest.mark.parametrize("mode", MODES)
def test_a_hidden_dataset_answers_as_a_missing_one(served: Served, keys: dict[str, str], mode: str) -> None:
    for who in ("carol", "dave"):
        w = _ward(served, mode, keys[who])
        reads: dict[str, Callable[[str], Any]] = {
            "dataset": w.dataset_info,
            "policy": w.policy,
            "versions": w.versions,
            "contributions": w.contributions,
            "transformations": w.transformations,
            "diff": lambda n, w=w: w.diff(f"{n}@v1", "v1"),
            "export": lambda n, w=w: w.read_version(n),
            "contribute": lambda n, w=w: w.contribute(n, Path(__file__), source="x"),
        }
        for name, read in reads.items():
            for hidden in ("secret", "secret-val"):
                seen, missing = _answer(lambda r=read, h=hidden: r(h)), _answer(lambda r=read: r("nosuch"))
                # A principal that may write nowhere may not upload the file at all, whatever the dataset
                # (docs/server.md, "Uploads"): the same refusal for both names.
                refused_upload = mode == "http" and name == "contribute" and who == "dave"
                assert seen[0] is missing[0] is (AccessDenied if refused_upload else NotFound), (who, name, hidden)
                assert (seen[1].replace(hidden, "nosuch"), seen[2]) == missing[1:], (who, name, hidden)
                assert "secret" not in seen[1].replace(hidden, ""), (who, name, hidden)
        # Contributions are not counted through it either, whatever is asked of them.
        acts: dict[str, Callable[[str], Any]] = {
            "show": w.contribution,
            "approve": lambda r, w=w: w.approve(r, reason="x"),
            "reject": lambda r, w=w: w.reject(r, reason="x"),
            "withdraw": lambda r, w=w: w.withdraw(r, reason="x"),
            "merge": w.merge,
            "gate run": w.run_gate,
            "gate report": w.gate_report,
            "override": lambda r, w=w: w.override_block(r, reason="x"),
            "quarantine": lambda r, w=w: w.quarantine_contribution(r, reason="x"),
        }
        for name, act in acts.items():
            answers = {ref: _answer(lambda r=ref, a=act: a(r)) for ref in ("secret#1", "secret#9", "nosuch#1")}
            assert {(t, m.replace(ref, "REF"), h) for ref, (t, m, h) in answers.items()} == {
                (NotFound, "no contribution 'REF'", answers["nosuch#1"][2])
            }, (who, name, answers)


@pytest.mark.parametrize("mode", MODES)
def test_refusals_name_no_hidden_dataset(served: Served, keys: dict[str, str], mode: str) -> None:
    # The owner of pub may quarantine there; what the admin submitted reaches secret too.
    olga = _ward(served, mode, keys["olga"])
    kind, message, hint = _answer(lambda: olga.quarantine_by("principal:admin", reason="probe"))
    assert kind is AccessDenied and "secret" not in f"{message} {hint}"
    assert len(olga.versions("pub")) == 1  # all or nothing: no rollback version was made
    carol = _ward(served, mode, keys["carol"])
    # What she can see but may not do is still refused as such.
    with pytest.raises(AccessDenied, match=r"version\.promote on dataset:pub"):
        carol.promote("pub@v1", reason="x")


@pytest.mark.parametrize("mode", MODES)
def test_a_source_trace_shows_only_what_the_caller_may_read(served: Served, keys: dict[str, str], mode: str) -> None:
    dave = _ward(served, mode, keys["dave"])
    seen = _answer(lambda: dave.trace("source:internal:secret"))
    unused = _answer(lambda: dave.trace("source:internal:unused"))
    assert seen[0] is unused[0] is NotFound and seen[1].replace("secret", "unused") == unused[1]
    for ref, missing in (("secret@v1", "nosuch@v1"), ("secret#1", "secret#9")):
        hidden, absent = _answer(lambda r=ref: dave.trace(r)), _answer(lambda r=missing: dave.trace(r))
        assert hidden[0] is absent[0] is NotFound
        assert hidden[1].replace(ref, missing).replace("'secret'", "'nosuch'") == absent[1]
    assert dave.trace("source:internal:pub")["contributions"][0]["ref"] == "pub#1"


def test_jobs_on_a_hidden_dataset_are_refused_before_they_are_queued(served: Served, keys: dict[str, str]) -> None:
    """A gate re-run, a selftest or a relabel on a dataset the caller may not see is refused when it is
    asked for, exactly as one on a dataset that does not exist (404, the same message): not accepted
    as a job that only fails once it runs, holding one of the caller's job slots meanwhile."""
    import httpx

    api = f"{served.url}/api/v1"
    jobs = {
        "gate": lambda ref: (f"{api}/contributions/{ref.replace('#', '%23')}/gate", {}),
        "selftest": lambda name: (f"{api}/datasets/{name}/selftest", {}),
        "relabel": lambda name: (f"{api}/datasets/{name}/relabel", {"changes": {"a" * 64: "1"}, "reason": "x"}),
    }
    probes = {"gate": ("secret#1", "secret#9"), "selftest": ("secret", "nosuch"), "relabel": ("secret", "nosuch")}
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {keys['carol']}"}) as http:
        for kind, (hidden, absent) in probes.items():
            answers = [http.post(url, json=body) for url, body in (jobs[kind](hidden), jobs[kind](absent))]
            assert [a.status_code for a in answers] == [404, 404], (kind, [a.text for a in answers])
            seen, missing = (a.json() for a in answers)
            assert seen["error"] == missing["error"] == "not_found", kind
            assert seen["message"].replace(hidden, absent) == missing["message"], kind
            assert seen["hint"] == missing["hint"], kind
        # What the caller can see is still accepted as a job (its own checks run when it runs).
        url, body = jobs["selftest"]("pub")
        assert http.post(url, json=body).status_code == 202


@pytest.fixture(scope="module")
def nobody(served: Served, keys: dict[str, str]) -> str:
    """The key of ``ivan``, a principal holding no grant at all."""
    admin = HTTPWard(served.url, key=served.admin_key)
    admin.create_principal("ivan")
    return str(admin.issue_key("ivan")["key"])


def _key_ref(key: str) -> str:
    return "dw_" + key.split("_")[1]


# A key id of the same shape as a real one, that no key has.
NO_KEY = "dw_zzzzzzzz"


@pytest.mark.parametrize("mode", MODES)
def test_a_containment_by_cause_tells_a_caller_with_no_quarantine_right_nothing_of_the_cause(
    served: Served, keys: dict[str, str], nobody: str, mode: str
) -> None:
    """Refused before the cause is looked up: a source only ``secret`` used, one never used, a principal
    that exists (did nothing, or acted in ``secret``), one that does not, a key and no key, all answer
    with the same refusal."""
    ivan = _ward(served, mode, nobody)
    refs = [
        "source:internal:secret",
        "source:internal:unused",
        "principal:dave",
        "principal:nosuch",
        "principal:admin",
        _key_ref(keys["dave"]),
        NO_KEY,
        "what-is-this",
    ]
    answers = {ref: _answer(lambda r=ref: ivan.quarantine_by(r, reason="probe")) for ref in refs}
    assert {a[0] for a in answers.values()} == {AccessDenied}, answers
    assert len({a[1:] for a in answers.values()}) == 1, answers
    assert "ivan" in answers[refs[0]][1] and "secret" not in str(answers[refs[0]][1:])


@pytest.mark.parametrize("mode", MODES)
def test_a_containment_by_cause_answers_hidden_absent_and_idle_causes_alike(
    served: Served, keys: dict[str, str], mode: str
) -> None:
    """``olga`` may quarantine in ``pub``: a source that touched only ``secret`` answers as one never used;
    a principal or key that exists and did nothing answers as one that does not exist."""
    olga = _ward(served, mode, keys["olga"])
    probes = [
        ("source:internal:secret", "source:internal:unused"),
        ("principal:dave", "principal:nosuch"),
        (_key_ref(keys["dave"]), NO_KEY),
    ]
    for there, absent in probes:
        seen = _answer(lambda r=there: olga.quarantine_by(r, reason="probe"))
        missing = _answer(lambda r=absent: olga.quarantine_by(r, reason="probe"))
        assert seen[0] is missing[0] is NotFound, (there, seen, missing)
        assert (seen[1].replace(there, absent), seen[2]) == missing[1:], (there, seen, missing)
        assert "secret" not in f"{seen[1].replace(there, '')} {seen[2]}"
    assert len(olga.versions("pub")) == 1  # nothing was contained
    # The hidden one is still a refusal on the record.
    admin = _ward(served, mode, served.admin_key)
    denials = str(admin.ledger(types=["access.denied"], limit=20))
    assert "'olga' may not quarantine in any dataset source:internal:secret touched" in denials


@pytest.mark.parametrize("mode", MODES)
def test_a_containment_by_cause_answers_an_admin_precisely(served: Served, keys: dict[str, str], mode: str) -> None:
    admin = _ward(served, mode, served.admin_key)
    for ref, message in (
        ("principal:nosuch", "no principal 'nosuch'"),
        ("principal:dave", "principal:dave touched no contribution"),
        (NO_KEY, f"no API key '{NO_KEY}'"),
        ("source:internal:unused", "source:internal:unused touched no contribution"),
    ):
        kind, text, _ = _answer(lambda r=ref: admin.quarantine_by(r, reason="probe"))
        assert kind is NotFound and text == message, (ref, text)


def test_a_containment_by_cause_over_http_is_403_then_404_alike(
    served: Served, keys: dict[str, str], nobody: str
) -> None:
    import httpx

    def post(key: str, ref: str) -> httpx.Response:
        return httpx.post(
            f"{served.url}/api/v1/quarantine",
            json={"ref": ref, "reason": "probe"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    refused = [post(nobody, ref) for ref in ("source:internal:secret", "principal:nosuch", "principal:admin", NO_KEY)]
    assert {a.status_code for a in refused} == {403}
    assert len({(a.json()["message"], a.json()["hint"]) for a in refused}) == 1
    hidden, unused = post(keys["olga"], "source:internal:secret"), post(keys["olga"], "source:internal:unused")
    assert hidden.status_code == unused.status_code == 404
    assert hidden.json()["message"].replace("secret", "unused") == unused.json()["message"]
    idle, absent = post(keys["olga"], "principal:dave"), post(keys["olga"], "principal:nosuch")
    assert idle.status_code == absent.status_code == 404
    assert idle.json()["message"].replace("dave", "nosuch") == absent.json()["message"]


@pytest.mark.parametrize("mode", MODES)
def test_a_containment_of_a_principal_tells_a_non_admin_only_the_grants_it_can_see_and_no_key(
    served: Served, keys: dict[str, str], mode: str, tmp_path: Path
) -> None:
    """``olga`` (owner of ``open-MODE``, no ``ledger.read``) contains ``bob-MODE``, contributor there and
    reader on ``secret``: the next steps name bob's grant she can see, never ``secret`` nor any key of
    bob's (an admin can list them); the admin is told everything."""
    admin = _ward(served, mode, served.admin_key)
    label, specs = wine_schema_specs()
    ds, bob = f"open-{mode}", f"bob-{mode}"
    admin.create_dataset(ds, Schema.parse(label, specs))
    admin.set_policy(ds, NO_APPROVALS_POLICY)
    admin.grant("olga", "owner", f"dataset:{ds}")
    admin.create_principal(bob)
    admin.grant(bob, "contributor", f"dataset:{ds}")
    admin.grant(bob, "reader", "dataset:secret")
    bob_key = str(admin.issue_key(bob)["key"])
    batch = write_csv(tmp_path / "bob.csv", wine_rows(20, 30, shuffled=True))
    _ward(served, mode, bob_key).contribute(ds, batch, source=f"internal:{bob}")

    steps = _ward(served, mode, keys["olga"]).quarantine_by(f"principal:{bob}", reason="probe")["next_steps"]
    told = " ".join(steps)
    assert "secret" not in told and "dw_" not in told and _key_ref(bob_key) not in told, steps
    assert f"dataward grant revoke {bob} contributor --scope dataset:{ds}" in told
    assert "an admin can list them" in steps[0] and f"dataward principal disable {bob}" in steps[0]

    full = " ".join(admin.quarantine_by(f"principal:{bob}", reason="probe")["next_steps"])
    assert f"1 usable key(s) ({_key_ref(bob_key)}" in full
    assert f"dataward key revoke {_key_ref(bob_key)}" in full
    assert f"dataward grant revoke {bob} reader --scope dataset:secret" in full


def _record_ids(served: Served, tmp_path: Path) -> dict[str, list[str]]:
    """The record ids of ``pub`` and of ``vault``, a dataset of the admin's alone whose records no other
    dataset holds (``secret`` holds ``pub``'s very rows: the same ids)."""
    admin = HTTPWard(served.url, key=served.admin_key)
    label, specs = wine_schema_specs()
    if "vault" not in {d["name"] for d in admin.datasets()}:
        admin.create_dataset("vault", Schema.parse(label, specs))
        admin.set_policy("vault", NO_APPROVALS_POLICY)
        admin.merge(admin.contribute("vault", write_csv(tmp_path / "v.csv", wine_rows(100, 140)), source="v")["ref"])
    return {n: admin.read_version(n)[1].column("record_id").to_pylist() for n in ("pub", "vault")}


@pytest.mark.parametrize("mode", MODES)
def test_a_record_traced_by_the_start_of_its_id_answers_as_by_its_whole_id(
    served: Served, keys: dict[str, str], mode: str, tmp_path: Path
) -> None:
    """`trace 62debd47db8dcc8` (an id as review lists and gate tables print it, 15 characters) said
    "cannot tell what it is". It traces the one record of a dataset the caller may trace whose id starts
    so; one only a hidden dataset holds answers as a start no id has, and a start several ids share
    lists only ids the caller may trace."""
    ids = _record_ids(served, tmp_path)
    dave = _ward(served, mode, keys["dave"])
    mine = ids["pub"][0]
    for given in (mine[:15], mine[:15] + "…", mine[:12]):
        traced = dave.trace(given)
        assert traced["subject"] == {"kind": "record", "id": mine} and traced["contributions"][0]["ref"] == "pub#1"
    assert dave.trace(mine[:15]) == dave.trace(mine)
    # Hidden: the same answer as for a start no record has.
    hidden = next(i for i in ids["vault"] if not any(p.startswith(i[:15]) for p in ids["pub"]))
    nothing = next(
        p for p in (f"{n:015x}" for n in range(99)) if not any(i.startswith(p) for v in ids.values() for i in v)
    )
    seen, absent = _answer(lambda: dave.trace(hidden[:15])), _answer(lambda: dave.trace(nothing))
    assert seen[0] is absent[0] is NotFound
    assert (seen[1].replace(hidden[:15], nothing), seen[2]) == absent[1:]
    # Too short to name a record: not taken for one.
    kind, message, _ = _answer(lambda: dave.trace(mine[:11]))
    assert kind is InputError and "cannot tell what" in message


def test_an_ambiguous_start_lists_only_ids_the_caller_may_trace(
    served: Served, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Twelve characters (48 bits) are unique among millions of records; with the least lowered to one
    character, a start many ids share is refused (exit 2) naming the candidates: those of the datasets
    the caller may trace, never another dataset's."""
    from dataward.service import tracing

    monkeypatch.setattr(tracing, "RECORD_PREFIX_MIN", 1)
    ids = _record_ids(served, tmp_path)
    dave = Ward.open(served.ward, key=keys["dave"])
    # A hex digit several of pub's ids and one of vault's start with (40 ids over 16 digits).
    digit = next(
        d
        for d in "0123456789abcdef"
        if sum(i.startswith(d) for i in ids["pub"]) > 1 and any(i.startswith(d) for i in ids["vault"])
    )
    with pytest.raises(InputError) as refused:
        dave.trace(digit)
    assert refused.value.details["candidates"] == sorted(i for i in ids["pub"] if i.startswith(digit))
    assert refused.value.exit_code == 2 and "vault" not in refused.value.message
