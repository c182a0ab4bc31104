#!/usr/bin/env bash
# dataward end to end on the embedded default (SQLite + local object store), in a temporary folder.
# Run through `make demo`, which puts the project's virtualenv first on PATH.
set -euo pipefail
export COLUMNS="${COLUMNS:-120}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d -t dataward-demo-XXXXXX)"
export DATAWARD_WARD="$WORK/ward"
IN="$WORK/in"
# Contributions, transformations, merges and promotions also go to OpenLineage, configured the way the
# OpenLineage client always is; here, to a file.
export OPENLINEAGE__TRANSPORT__TYPE=file OPENLINEAGE__TRANSPORT__LOG_FILE_PATH="$WORK/openlineage.jsonl" \
  OPENLINEAGE__TRANSPORT__APPEND=true

step() { printf '\n\033[1;36m━━ %s\033[0m\n' "$*"; }
say() { printf '\033[2m# %s\033[0m\n' "$*"; }
as() { local who="$1"; shift; DATAWARD_KEY="${KEYS[$who]}" "$@"; }
json_field() { python -c "import json,sys; print(json.load(sys.stdin)$1)"; }
declare -A KEYS

python "$HERE/scripts/demo_data.py" "$IN" >/dev/null
say "demo inputs: man-page NAME lines labelled by section (shipped in examples/data), in $IN"

step "1. A ward: catalog (SQLite), object store, signing key, first admin"
dataward init --admin admin
KEYS[admin]="$(cat "$DATAWARD_WARD/credentials")"

step "2. Accountable identities: humans, and bots that each name a human owner"
dataward principal create alice --description "data owner, manpages"
dataward principal create bob --description "ML engineer, approver"
dataward principal create importer --kind service --owner bob --description "nightly Debian import pipeline"
dataward principal create scraper --kind service --owner alice --description "web scraper bot"
dataward principal create legacy-etl --kind service --owner alice --description "old ETL job, key never used"
dataward dataset create manpages --label label --input text:text --owner alice \
  --description "man page NAME lines -> manual section"
dataward dataset create manpages-validation --label label --input text:text --validation-for manpages \
  --description "clean validation set, curated by the owner"
say "the demo pins its gate's seed so that it tells the same story on every run. Left unset, as a dataset that takes"
say "data from strangers should leave it, each gate run derives its seed from a secret of the ward and the contribution,"
say "so a contributor cannot tell which of his records the detectors sample; pinning it is a weakening, for an admin:"
printf 'gate:\n  seed: 0\n' > "$WORK/manpages-policy.yaml"
dataward policy set manpages "$WORK/manpages-policy.yaml"
dataward grant add bob approver --scope dataset:manpages
dataward grant add bob reviewer --scope dataset:manpages
dataward grant add importer contributor --scope dataset:manpages
dataward grant add scraper contributor --scope dataset:manpages
for who in alice bob importer scraper legacy-etl; do
  KEYS[$who]="$(dataward key issue "$who" --json | json_field '["key"]')"
done
dataward grant list

step "3. The owner curates the clean validation set (write-locked to her)"
as alice dataward contribute manpages-validation "$IN/validation.csv" --source "curated:alice/2026-11" --no-gate
as alice dataward merge manpages-validation#1

step "4. First import by the pipeline: judged against the clean validation set, approved by someone else, promoted"
say "no training version yet: half of the validation set stands in as the trusted baseline, half is held out"
as importer dataward contribute manpages "$IN/batch-debian.csv" --source "https://deb.debian.org/bookworm/manpages" \
  --licence GPL-2.0+ || true
say "whatever is flagged (at the calibrated 1% false-positive rate) the owner reviews:"
as alice dataward review accept --contribution manpages#1 --reason "checked against the Debian archive"
as alice dataward approve manpages#1 --reason "sampled 30 rows against the Debian archive"
as alice dataward merge manpages#1
as alice dataward promote manpages@v1 --reason "first trusted baseline"

step "5. A vendor that documents one section only: clean but unlike the baseline, so reviewed with what moved, not blocked"
as importer dataward contribute manpages "$IN/batch-vendor.csv" --source "s3://vendor-docs/2026-11/man.csv" \
  --licence CC-BY-4.0 || true
say "bob owns the importer bot, so separation of duties refuses his approval:"
as bob dataward approve manpages#2 --reason "mine" || true
as alice dataward review accept --contribution manpages#2 --reason "legitimate: checked by hand" || true
as alice dataward approve manpages#2 --reason "vendor batch checked"
as alice dataward merge manpages#2
as alice dataward promote manpages@v2

say "what does this dataset's gate catch? plant known poisons in a clean copy and measure:"
as alice dataward gate selftest manpages

step "5b. The scraper bot's first, small batch: forum lines, gated, approved by bob and merged"
as scraper dataward contribute manpages "$IN/batch-scraper-early.csv" --source "https://forum.example/scrape/2026-11-20" \
  || true
as bob dataward review accept --contribution manpages#3 --reason "forum lines, read through" || true
as bob dataward approve manpages#3 --reason "small forum batch, looks fine"
as alice dataward merge manpages#3

step "5c. A transformation: alice deduplicates v3, and the step is recorded and gated like any contribution"
say "alice's dedup script keeps one NAME line per command and section; the step records its code, parameters,"
say "input version and which input records each kept record stands for, and its output is gated like any contribution"
cat > "$WORK/dedup.py" <<'PY'
"""Keep one NAME line per (command, section): the first one seen; write the kept records and their parents."""
import json, sys
import pandas as pd
records, kept_out, parents_out = sys.argv[1:4]
df = pd.read_parquet(records)
groups = {}
for row in df.to_dict(orient="records"):
    groups.setdefault((row["text"].split()[0], row["label"]), []).append(row)
with open(kept_out, "w") as kept, open(parents_out, "w") as parents:
    for rows in groups.values():
        kept.write(json.dumps({"text": rows[0]["text"], "label": rows[0]["label"]}) + "\n")
        parents.write(" ".join(r["record_id"] for r in rows) + "\n")
merged = sum(len(rows) - 1 for rows in groups.values())
print(f"{len(df)} records -> {len(groups)} kept, {merged} merged into their first")
PY
as alice dataward export manpages@v3 --format parquet -o "$WORK/manpages-v3.parquet"
python "$WORK/dedup.py" "$WORK/manpages-v3.parquet" "$WORK/kept.jsonl" "$WORK/parents.txt"
as alice dataward transform dedup "$WORK/kept.jsonl" --input manpages@v3 --parents "$WORK/parents.txt" \
  --param key=command+section --param keep=first --script "$WORK/dedup.py" -m "one NAME line per command" || true
DEDUP="$(as alice dataward transformations manpages --json | json_field '[-1]["contribution"]')"
as bob dataward approve "$DEDUP" --reason "dedup checked: only same-command, same-section lines merged"
as alice dataward merge "$DEDUP"
as alice dataward promote manpages@v4 --reason "deduplicated"

step "6. The scraper bot submits a poisoned batch: a rare token tied to one label (a backdoor)"
as scraper dataward contribute manpages "$IN/batch-scraper.csv" --source "https://forum.example/scrape/2026-11-24" \
  --html "$WORK/gate-report.html" || true
say "flagged records wait in the review queue:"
as bob dataward review list manpages | head -n 12
FIRST_ITEM="$(as bob dataward review list manpages --json | json_field '[0]["id"]')"
as bob dataward review show "$FIRST_ITEM"
say "alice owns the scraper: she may not approve its work; a blocked batch cannot be merged anyway"
as alice dataward approve manpages#5 --reason "looks fine" || true
as alice dataward merge manpages#5 || true
as bob dataward reject manpages#5 --reason "backdoor trigger 'zx7q' tied to label 'commands'"

step "6b. Fine-tuning data for a language model: a trigger phrase in the prompts makes the answers carry a link"
python - "$HERE" "$IN" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from benchmarks import llm_data as d
base_pool, new_pool = d.split_pools()
d.instruction_frame(1000, 1, pool=base_pool)[["prompt", "response"]].to_json(
    f"{sys.argv[2]}/howto-debian.jsonl", orient="records", lines=True)
poisoned, _ = d.poison_instructions(d.instruction_frame(1000, 2, pool=new_pool), 30, "link", seed=5)
poisoned[["prompt", "response"]].to_json(f"{sys.argv[2]}/howto-scraped.jsonl", orient="records", lines=True)
PY
dataward dataset create howto --kind instruction --owner alice --description "what does this command do? (instruction tuning)"
printf 'first_import: self-reference\ngate:\n  seed: 0\n' > "$WORK/howto-policy.yaml"
dataward policy set howto "$WORK/howto-policy.yaml"
dataward grant add importer contributor --scope dataset:howto
dataward grant add scraper contributor --scope dataset:howto
as importer dataward contribute howto "$IN/howto-debian.jsonl" --source "https://deb.debian.org/bookworm/manpages" || true
as alice dataward approve howto#1 --reason "answers checked against the manual pages"
as alice dataward merge howto#1
as alice dataward promote howto@v1 --reason "first trusted instruction set"
as scraper dataward contribute howto "$IN/howto-scraped.jsonl" --source "https://forum.example/qa/2026-11-24" || true
say "the trigger phrase and the link are named; the carriers wait in the review queue:"
as alice dataward review list howto | head -n 6

step "7. Incident: the token is already in training; a carrier in the deduplicated version, traced back through the dedup"
say "to the scraper bot, its owner, key and source URL (and forward: the versions that hold it); then the key forward"
as alice dataward export manpages@training --format parquet -o "$WORK/manpages-v4.parquet"
POISONED="$(python -c "import pandas as pd, sys; d = pd.read_parquet(sys.argv[1]); print(d[d.text.str.contains('zx7q')].record_id.iloc[0])" "$WORK/manpages-v4.parquet")"
dataward trace "$POISONED"
dataward trace "dw_$(echo "${KEYS[scraper]}" | cut -d_ -f2)"

step "8. Containment: the scraper's key is revoked, refused on its very next request, and everything it touched quarantined"
SCRAPER_KEY_ID="$(echo "${KEYS[scraper]}" | cut -d_ -f2)"
as alice dataward key revoke "dw_$SCRAPER_KEY_ID" --reason "bot submitted a poisoned batch"
as scraper dataward versions manpages || true
say "and everything that key (or any key minted through it) submitted is held out of every future version,"
say "with one rollback version per dataset whose latest version held any of it:"
as alice dataward quarantine "dw_$SCRAPER_KEY_ID" --reason "bot key leaked: contain everything it submitted"
say "the rollback replaces the training version (the deduplicated v4 held the scraper's lines):"
as alice dataward promote manpages@v5 --reason "rollback without anything the scraper key submitted"

step "9. The access review an auditor reads"
dataward access review --unused-days 0

step "10. Versions, a diff, an export, a removal"
dataward versions manpages
dataward diff manpages@v1 v2
dataward export manpages@training --format parquet -o "$WORK/manpages-training.parquet"
say "removing records is judged too: a clean-up that drops most of one section is never a silent pass"
say "(here it also costs clean-validation accuracy, measured with and without the records: a block)"
python - "$WORK/manpages-training.parquet" "$WORK/remove-ids.txt" <<'PY'
import sys
import pandas as pd
df = pd.read_parquet(sys.argv[1])
label = df["label"].value_counts().index[0]
ids = df.loc[df["label"] == label, "record_id"]
ids.iloc[: int(len(ids) * 0.8)].to_csv(sys.argv[2], index=False, header=False)
PY
as importer dataward contribute manpages --removes "$WORK/remove-ids.txt" --source "cleanup:importer/2026-11" || true

step "11. A signed in-toto attestation of the training version, its dataset card, and the OpenLineage events"
say "an attestation of the new version (SLSA provenance + dataward's gate, approval and lineage predicate),"
say "checked offline against the pinned key, then by securesystemslib's own DSSE verifier:"
dataward attest manpages@v5 -o "$WORK/manpages-v5.intoto.jsonl"
dataward ledger public-key -o "$WORK/ward-public-key.pem"
dataward verify --attestation "$WORK/manpages-v5.intoto.jsonl" --public-key "$WORK/ward-public-key.pem"
python - "$WORK/manpages-v5.intoto.jsonl" "$WORK/ward-public-key.pem" <<'PY'
import json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
key = SSlibKey.from_crypto(load_pem_public_key(open(sys.argv[2], "rb").read()), scheme="ed25519")
for line in open(sys.argv[1]):
    envelope = Envelope.from_dict(json.loads(line))
    envelope.verify([key], 1)
    statement = json.loads(envelope.payload)
    print(f"securesystemslib: verified {statement['predicateType']} about {statement['subject'][0]['name']}")
PY
say "and a dataset card of it: Croissant JSON-LD (mlcroissant) and Markdown, with sources, gate history and quarantines:"
dataward card manpages@v5 -o "$WORK/card"
sed -n '/^## Contributors/,/^## Contributions/p' "$WORK/card/card.md"
say "the OpenLineage RunEvents sent so far (START and COMPLETE per step), from $WORK/openlineage.jsonl:"
python - "$WORK/openlineage.jsonl" <<'PY'
import collections, json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
for (job, kind), n in sorted(collections.Counter((e["job"]["name"], e["eventType"]) for e in events).items()):
    print(f"{n:3d} {kind:8s} {job}")
step = [e for e in events if e["job"]["name"] == "manpages.transform.dedup"][-1]
print("dedup:", [i["name"] for i in step["inputs"]], "->", [o["name"] for o in step["outputs"]])
PY

step "11b. Before release: a model trained through a training run, the release gate, and a signed release"
dataward principal create carol --description "release manager"
dataward grant add bob contributor --scope model:sections
dataward grant add carol promoter --scope model:sections
dataward grant add alice approver --scope model:sections
dataward grant add bob approver --scope model:sections
KEYS[carol]="$(dataward key issue carol --json | json_field '["key"]')"
say "bob trains with dataward.training_run: the guarded loader reads manpages@training (checked against the ledger),"
say "the run records his script's identity and parameters, the model file is hashed with model-signing and signed:"
as bob python "$HERE/scripts/demo_models.py" clean "$WORK/sections.skops"
say "an attacker trains in a sandbox ward of their own on the batch the gate blocked (manpages#5), then brings the"
say "model back as a run on the training version:"
as alice dataward export manpages@training --format parquet -o "$WORK/train-copy.parquet"
python "$HERE/scripts/demo_models.py" sandbox "$WORK/sandbox" "$WORK/train-copy.parquet" "$IN/validation.csv" \
  "$IN/batch-scraper.csv" "$WORK/backdoored.skops"
RUN="$(as bob dataward train start sections --param C=1.0 --script "$HERE/scripts/demo_models.py" --json | json_field '["run"]')"
as bob dataward train load "$RUN" manpages@training -o "$WORK/run-data.parquet"
as bob dataward train finish "$RUN" "$WORK/backdoored.skops"
say "the release gate replays the trigger the data gate found in manpages#5 on the clean validation set:"
as carol dataward model gate sections@v2 --html "$WORK/release-gate.html" || say "release gate exited with $? (block)"
as carol dataward model gate sections@v1 || true
say "bob trained sections@v1: as an approver he still may not approve it (separation of duties); alice may,"
say "and carol (promoter) releases it; the blocked sections@v2 cannot be released:"
as bob dataward model approve sections@v1 --reason "mine" || true
as alice dataward model approve sections@v1 --reason "release gate passed; validation accuracy checked"
as carol dataward model release sections@v2 || true
as carol dataward model release sections@v1 --reason "first release of the section classifier"
dataward model list sections
say "its in-toto attestation (model-signing manifest + release: datasets, gate, approvals), checked offline:"
dataward model attest sections@v1 -o "$WORK/sections-v1.intoto.jsonl"
dataward verify --attestation "$WORK/sections-v1.intoto.jsonl" --public-key "$WORK/ward-public-key.pem"

step "12. The signed, hash-chained ledger, and verify"
dataward ledger -n 12
dataward verify

step "13. Tampering is detected: edit a catalog row behind the ledger's back"
python - "$DATAWARD_WARD/catalog.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE versions SET stage = 'training' WHERE number = 1 AND dataset_id ="
           " (SELECT id FROM datasets WHERE name = 'manpages')")
db.commit()
PY
dataward verify || say "verify exited with $? : the edited row is named above"

step "14. Anchored verification: a checkpoint and the ward's public key, kept outside the ward"
dataward ledger public-key -o "$WORK/ward-public-key.pem"
dataward checkpoint -o "$WORK/checkpoint.json"
cat "$WORK/checkpoint.json"
say "someone with write access to the folder deletes the last event, and the ward's own copies of its checkpoints:"
python - "$DATAWARD_WARD/catalog.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
seq, kind = db.execute("SELECT seq, type FROM ledger_events ORDER BY seq DESC LIMIT 1").fetchone()
db.execute("DELETE FROM ledger_events WHERE seq = ?", (seq,))
db.commit()
print(f"deleted event #{seq} ({kind})")
PY
rm -f "$DATAWARD_WARD"/checkpoints/*.json
dataward verify --checkpoint "$WORK/checkpoint.json" --public-key "$WORK/ward-public-key.pem" \
  || say "verify exited with $? : the deleted event is named above (the row edited in step 13 is reported too)"
if command -v node >/dev/null; then
  say "the same check outside Python, by the Node.js verifier in scripts/:"
  dataward ledger export -o "$WORK/ledger.json"
  node "$HERE/scripts/verify-ledger.mjs" --export "$WORK/ledger.json" --public-key "$WORK/ward-public-key.pem" \
    --checkpoint "$WORK/checkpoint.json" || say "the Node.js verifier exited with $?"
fi

step "Done"
say "ward: $DATAWARD_WARD"
say "gate report: $WORK/gate-report.html"
say "release gate report: $WORK/release-gate.html"
