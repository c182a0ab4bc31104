"""One story, two wards: the same CLI commands against an embedded ward (a folder) and against a
served one (``--url`` through a real uvicorn server) give the same output, errors and exit codes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dataward
from dataward.cli.app import app
from tests.helpers import LIGHT_GATE_POLICY, wine_rows, wine_schema_specs, write_csv
from tests.server.conftest import Served

MODES = ("embedded", "http", pytest.param("http-postgresql", marks=pytest.mark.postgres))


@dataclass
class Step:
    """One command of the story and what it gave."""

    name: str
    exit_code: int
    raw: str
    raw_err: str
    story: Story

    @property
    def stdout(self) -> str:
        """Standard output with ids, hashes, times and paths normalized."""
        return normalize(self.raw, self.story.root, self.story.aliases)

    @property
    def stderr(self) -> str:
        return normalize(self.raw_err, self.story.root, self.story.aliases)


_NORMALIZE = [
    (re.compile(r"dw_[a-z2-7]{8}_[a-z2-7]{16,}"), "<key>"),
    (re.compile(r"dw_[a-z2-7]{8}"), "<key-id>"),
    (re.compile(r"b3:[0-9a-f]+…?"), "<hash>"),
    (re.compile(r"hmac-sha256\$[0-9a-f]+\$[0-9a-f]+"), "<salted-hash>"),
    # The ledger's export event names the file the ward wrote: the caller's file when embedded, the
    # server's temporary file (streamed to the caller) when served. The one documented difference.
    (re.compile(r'"path": "(<root>/out\.csv|/[^"]*/dataward-serve-[^"/]+/export\.csv)"'), '"path": "<export>"'),
    (re.compile(r"\d{12}-[0-9a-f]{16}\.json"), "<checkpoint-file>"),
    (re.compile(r"ed25519:[0-9a-f]+"), "<fingerprint>"),
    (re.compile(r"\b[a-z]{1,2}_[0-9a-f]{3,}…?"), "<id>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?"), "<time>"),
    (re.compile(r"[A-Za-z0-9+/]{86}=="), "<signature>"),
    (re.compile(r"[A-Za-z0-9+/]{43}="), "<public-key>"),
]


def _flat(text: str) -> str:
    """Printed text with its line breaks undone: Rich wraps long lines at the terminal's width."""
    return " ".join(text.split())


def normalize(text: str, root: Path, aliases: dict[str, str]) -> str:
    text = text.replace(str(root), "<root>")
    for pattern, replacement in _NORMALIZE:
        text = pattern.sub(replacement, text)
    for value, alias in aliases.items():
        text = text.replace(value, alias)
    return text


class Story:
    """Runs CLI commands in this process against one ward, in one mode, recording each step."""

    def __init__(self, mode: str, root: Path, env: dict[str, str | None], admin_key: str) -> None:
        self.mode = mode
        self.root = root
        self.env = {**env, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
        self.admin_key = admin_key
        self.steps: list[Step] = []
        # Key ids appear bare (8 characters) in some documents: name them, as the ids are random.
        self.aliases = {admin_key.split("_")[1]: "<admin-key-id>"}
        self.runner = CliRunner()

    def run(self, name: str, *args: str, key: str | None = None) -> Step:
        env = {**self.env, "DATAWARD_KEY": key or self.admin_key}
        result = self.runner.invoke(app, list(args), env=env, catch_exceptions=False)
        step = Step(name, result.exit_code, result.stdout, result.stderr, self)
        self.steps.append(step)
        return step


def tell_the_story(story: Story) -> None:
    """The main job, as two people (an admin and a contributor) do it, with refusals along the way."""
    root = story.root
    # Two wards derive different gate seeds for the same file; pinned (by the admin), they judge alike.
    (root / "policy.yaml").write_text(LIGHT_GATE_POLICY.replace("gate:\n", "gate:\n  seed: 0\n"))
    write_csv(root / "a.csv", wine_rows(0, 120, shuffled=True))  # a self-test needs 100 trusted
    (root / "bad.csv").write_text("alcohol,malic_acid,ash,magnesium,proline,cultivar\n1,2,3,4,5,0\n1,2,x,4,5,1\n")
    label, specs = wine_schema_specs()
    inputs = [part for s in specs for part in ("--input", s)]

    story.run("whoami", "whoami", "--json")
    story.run("dataset create", "dataset", "create", "wine", "--label", label, *inputs)
    story.run("policy set", "policy", "set", "wine", str(root / "policy.yaml"))
    story.run("principal create", "principal", "create", "alice")
    story.run("grant", "grant", "add", "alice", "contributor", "--scope", "dataset:wine")
    alice = json.loads(story.run("key issue", "key", "issue", "alice", "--json").raw)["key"]
    story.aliases[alice.split("_")[1]] = "<alice-key-id>"
    story.run(
        "contribute",
        *("contribute", "wine", str(root / "a.csv"), "--source", "https://example.org/wine.csv"),
        *("--html", str(root / "report.html"), "--json"),
        key=alice,
    )
    story.run("self-approval", "approve", "wine#1", "--reason", "mine", key=alice)
    story.run("contributions", "contributions", "wine", key=alice)
    story.run("gate run", "gate", "run", "wine#1")
    story.run("approve", "approve", "wine#1", "--reason", "checked")
    story.run("merge", "merge", "wine#1")
    story.run("versions", "versions", "wine")
    story.run("promote", "promote", "wine@v1", "--reason", "reviewed")
    story.run("export", "export", "wine@v1", "-o", str(root / "out.csv"), "--format", "csv")
    story.run("bad file", "contribute", "wine", str(root / "bad.csv"), "--source", "s", key=alice)
    story.run("missing file", "contribute", "wine", str(root / "nope.csv"), "--source", "s", key=alice)
    story.run("no dataset", "versions", "nosuch", "--json")
    story.run("trace", "trace", "wine#1", "--json")
    story.run("review list", "review", "list", "wine")
    story.run("gate report", "gate", "report", "wine#1", "--json")
    story.run("verify", "verify")
    story.run("access review", "access", "review", "--json")
    alice_id = alice.rsplit("_", 1)[0]
    story.run("key revoke", "key", "revoke", alice_id, "--reason", "leaving")
    story.run("revoked key", "datasets", key=alice)
    story.run("unknown key", "versions", "wine", key="dw_aaaaaaaa_" + "b" * 52)
    story.run("ledger", "ledger", "-n", "12", "--json")
    story.run("ledger head", "ledger", "head", "--json")
    story.run("principal list", "principal", "list")
    story.run("key list", "key", "list", "--json")
    story.run("grant list", "grant", "list")
    story.run("policy show", "policy", "show", "wine", "--json")
    story.run("diff", "diff", "wine@v1", "v1", "--json")
    story.run("public key", "ledger", "public-key", "-o", str(root / "ward.pem"))
    story.run("checkpoint", "checkpoint", "-o", str(root / "cp.json"))
    story.run(
        "anchored verify",
        *("verify", "--checkpoint", str(root / "cp.json"), "--public-key", str(root / "ward.pem"), "--json"),
    )
    write_csv(root / "b.csv", wine_rows(120, 140, shuffled=True))
    story.run("second contribution", "contribute", "wine", str(root / "b.csv"), "--source", "s2", "--no-gate")
    story.run("withdraw", "withdraw", "wine#2", "--reason", "wrong file")
    record_id = (root / "out.csv").read_text().splitlines()[1].split(",")[0].strip('"')
    story.run("relabel", "relabel", "wine", "--set", f"{record_id}=2", "--reason", "vendor fix", "--no-gate", "--json")
    story.run("transformations", "transformations", "wine", "--json")
    story.run("attest", "attest", "wine@v1", "-o", str(root / "attestation.jsonl"))
    story.run("card", "card", "wine@v1", "-o", str(root / "card"), "--json")
    story.run("selftest", "gate", "selftest", "wine", "--json")
    story.run("quarantine", "quarantine", "wine#1", "--reason", "incident", "--json")
    story.run("quarantine by principal", "quarantine", "principal:alice", "--reason", "incident", "--json")
    tell_access_steps(story)


def tell_access_steps(story: Story) -> None:
    """A reviewer of one dataset, and a bot whose owner leaves, as a new user meets them."""
    root = story.root
    write_csv(root / "one.csv", wine_rows(0, 120, shuffled=True)[:2])
    story.run("principal create rita", "principal", "create", "rita")
    story.run("grant rita", "grant", "add", "rita", "reviewer", "--scope", "dataset:wine")
    rita = json.loads(story.run("key issue rita", "key", "issue", "rita", "--json").raw)["key"]
    story.aliases[rita.split("_")[1]] = "<rita-key-id>"
    story.run("reviewer datasets", "datasets", "--json", key=rita)
    trace_file = ("trace", "--file", str(root / "one.csv"), "--dataset", "wine", "--json")
    story.run("reviewer trace file", *trace_file, key=rita)
    story.run("reviewer ledger", "ledger", "-n", "1", key=rita)
    for name in ("hu", "hu2"):
        story.run(f"principal create {name}", "principal", "create", name)
    story.run("principal create bot", "principal", "create", "bot", "--kind", "service", "--owner", "hu")
    story.run("disable owner", "principal", "disable", "hu")
    story.run("key for suspended bot", "key", "issue", "bot")
    story.run("grant to disabled human", "grant", "add", "hu", "reader", "--scope", "dataset:wine")
    story.run("enable orphaned bot", "principal", "enable", "bot")
    story.run("transfer suspended bot", "principal", "transfer", "bot", "--to", "hu2")
    story.run("enable by non-admin", "principal", "enable", "bot", key=rita)
    story.run("enable bot", "principal", "enable", "bot", "--reason", "hu2 runs it")
    bot = json.loads(story.run("key for enabled bot", "key", "issue", "bot", "--json").raw)["key"]
    story.aliases[bot.split("_")[1]] = "<bot-key-id>"
    story.run("enabled bot", "whoami", "--json", key=bot)


EXPECTED_EXIT = {
    "whoami": 0,
    "dataset create": 0,
    "policy set": 0,
    "contribute": 0,
    "self-approval": 6,
    "approve": 0,
    "merge": 0,
    "promote": 0,
    "export": 0,
    "bad file": 2,
    "missing file": 3,  # not_found, as docs/cli.md lists it
    "no dataset": 3,
    "gate run": 0,
    "verify": 0,
    "key revoke": 0,
    "revoked key": 5,
    "unknown key": 5,
    "ledger": 0,
    "public key": 0,
    "checkpoint": 0,
    "anchored verify": 0,
    "withdraw": 0,
    "quarantine": 0,
    "second contribution": 0,
    "selftest": 0,
    "relabel": 0,
    "transformations": 0,
    "attest": 0,
    "card": 0,
    "quarantine by principal": 0,
    "reviewer datasets": 0,
    "reviewer trace file": 0,
    "reviewer ledger": 6,
    "disable owner": 0,
    "key for suspended bot": 4,
    "grant to disabled human": 4,
    "enable orphaned bot": 4,
    "transfer suspended bot": 0,
    "enable by non-admin": 6,
    "enable bot": 0,
    "key for enabled bot": 0,
    "enabled bot": 0,
}


@pytest.fixture(scope="module")
def told(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Story]:
    """The story told once per mode, each against its own new ward, on first asking."""
    cache: dict[str, Story] = {}

    def tell(mode: str) -> Story:
        if mode not in cache:
            root = tmp_path_factory.mktemp(mode)
            if mode == "embedded":
                folder = root / "ward"
                _, key = dataward.init(folder)
                env: dict[str, str | None] = {"DATAWARD_WARD": str(folder), "DATAWARD_URL": None}
            else:
                served: Served = request.getfixturevalue("served" if mode == "http" else "served_postgresql")
                env, key = {"DATAWARD_URL": served.url, "DATAWARD_WARD": None}, served.admin_key
            story = Story(mode, root, env, key)
            tell_the_story(story)
            cache[mode] = story
        return cache[mode]

    return tell


@pytest.mark.parametrize("mode", MODES)
def test_exit_codes(told: Callable[[str], Story], mode: str) -> None:
    steps = {s.name: s for s in told(mode).steps}
    for name, code in EXPECTED_EXIT.items():
        assert steps[name].exit_code == code, (name, steps[name].stdout, steps[name].stderr)


@pytest.mark.parametrize("mode", MODES)
def test_refusals_say_why(told: Callable[[str], Story], mode: str) -> None:
    steps = {s.name: s for s in told(mode).steps}
    assert "approve" in steps["self-approval"].stderr and "own" in steps["self-approval"].stderr
    assert "bad.csv" in steps["bad file"].stderr and "line 3" in steps["bad file"].stderr
    assert "nope.csv" in steps["missing file"].stderr
    assert json.loads(steps["no dataset"].stdout)["error"] == "not_found"
    assert "revoked" in steps["revoked key"].stderr
    assert "not recognised" in steps["unknown key"].stderr
    assert [d["name"] for d in json.loads(steps["reviewer datasets"].stdout)] == ["wine"]
    traced = json.loads(steps["reviewer trace file"].stdout)
    assert traced["subject"]["rows"] == 2 and len(traced["traces"]) == 2
    assert "'rita' may not ledger.read on the ward: it needs" in _flat(steps["reviewer ledger"].stderr)
    assert "(it holds reviewer on dataset:wine only)" in _flat(steps["reviewer ledger"].stderr)
    assert "'bot' is suspended" in _flat(steps["key for suspended bot"].stderr)
    assert "dataward principal enable bot" in _flat(steps["key for suspended bot"].stderr)
    assert "'hu' is disabled" in _flat(steps["grant to disabled human"].stderr)
    assert "owned by 'hu', who is disabled" in _flat(steps["enable orphaned bot"].stderr)
    assert "still suspended" in _flat(steps["transfer suspended bot"].stdout)
    assert "dataward principal enable bot" in _flat(steps["transfer suspended bot"].stdout)
    assert "only an admin may" in _flat(steps["enable by non-admin"].stderr)
    assert "enabled bot (was suspended, owned by hu2)" in _flat(steps["enable bot"].stdout)
    assert json.loads(steps["enabled bot"].stdout)["principal"] == "bot"
    for step in told(mode).steps:
        assert "Traceback" not in step.stderr


@pytest.mark.parametrize("mode", MODES)
def test_local_files_are_written_on_the_callers_side(told: Callable[[str], Story], mode: str) -> None:
    root = told(mode).root
    assert len((root / "out.csv").read_text().splitlines()) == 121
    assert "<html" in (root / "report.html").read_text().lower()
    contributed = json.loads(next(s for s in told(mode).steps if s.name == "contribute").raw)
    assert contributed["gate"]["verdict"] == "pass" and contributed["added"] == 120


@pytest.mark.parametrize("served_mode", MODES[1:])
def test_same_output_embedded_and_served(told: Callable[[str], Story], served_mode: str) -> None:
    embedded, served = told("embedded").steps, told(served_mode).steps
    assert [s.name for s in embedded] == [s.name for s in served]
    for a, b in zip(embedded, served, strict=True):
        if (a.exit_code, a.stdout, a.stderr) != (b.exit_code, b.stdout, b.stderr):
            import difflib

            diff = difflib.unified_diff(
                (a.stdout + a.stderr).splitlines(), (b.stdout + b.stderr).splitlines(), lineterm=""
            )
            pytest.fail(f"{a.name}: exit {a.exit_code} vs {b.exit_code}\n" + "\n".join(diff))
