#!/usr/bin/env bash
# The demo's story against a served ward: `dataward serve` runs in the background on a temporary
# ward, and two people (and their bots) act through their own API keys over HTTP. Nobody but the
# server process touches the ward's folder. Run through `make demo-server`.
set -euo pipefail
export COLUMNS="${COLUMNS:-120}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d -t dataward-demo-server-XXXXXX)"
SERVER_WARD="$WORK/server/ward"
IN="$WORK/in"
CLIENT="$WORK/client"
mkdir -p "$CLIENT"

step() { printf '\n\033[1;36m━━ %s\033[0m\n' "$*"; }
say() { printf '\033[2m# %s\033[0m\n' "$*"; }
as() { local who="$1"; shift; DATAWARD_KEY="${KEYS[$who]}" "$@"; }
json_field() { python -c "import json,sys; print(json.load(sys.stdin)$1)"; }
declare -A KEYS

python "$HERE/scripts/demo_data.py" "$IN" >/dev/null

step "1. On the server: a ward, and dataward serve in the background"
env -u DATAWARD_URL -u DATAWARD_KEY dataward init "$SERVER_WARD" --admin admin
KEYS[admin]="$(cat "$SERVER_WARD/credentials")"
PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
env -u DATAWARD_URL -u DATAWARD_KEY -u DATAWARD_WARD \
  dataward serve --ward "$SERVER_WARD" --port "$PORT" --workers 2 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  python -c "import httpx, sys; httpx.get('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
  sleep 0.2
done
say "serving on http://127.0.0.1:$PORT (TLS belongs to a reverse proxy in front, see docs/server.md)"

# From here on, everyone is a client: a URL and their own key, no access to the ward's folder.
export DATAWARD_URL="http://127.0.0.1:$PORT"
unset DATAWARD_WARD
cd "$CLIENT"

step "2. The admin registers people and bots and hands out keys"
as admin dataward whoami
as admin dataward principal create alice --description "data owner, manpages"
as admin dataward principal create bob --description "ML engineer, approver"
as admin dataward principal create importer --kind service --owner bob --description "nightly import pipeline"
as admin dataward principal create scraper --kind service --owner alice --description "web scraper bot"
as admin dataward dataset create manpages --label label --input text:text --owner alice \
  --description "man page NAME lines -> manual section"
as admin dataward dataset create manpages-validation --label label --input text:text --validation-for manpages
as admin dataward grant add bob approver --scope dataset:manpages
as admin dataward grant add importer contributor --scope dataset:manpages
as admin dataward grant add scraper contributor --scope dataset:manpages
for who in alice bob importer scraper; do
  KEYS[$who]="$(as admin dataward key issue "$who" --json | json_field '["key"]')"
done
as alice dataward whoami

step "3. Alice curates the clean validation set; the pipeline's first import is gated, approved, promoted"
as alice dataward contribute manpages-validation "$IN/validation.csv" --source "curated:alice/2026-11" --no-gate
as alice dataward merge manpages-validation#1
as importer dataward contribute manpages "$IN/batch-debian.csv" --source "https://deb.debian.org/bookworm/manpages" \
  --licence GPL-2.0+ || true
as alice dataward review accept --contribution manpages#1 --reason "checked against the Debian archive"
say "bob owns the importer bot: separation of duties refuses his approval, over HTTP as anywhere"
as bob dataward approve manpages#1 --reason "mine" || true
as alice dataward approve manpages#1 --reason "sampled 30 rows against the Debian archive"
as alice dataward merge manpages#1
as alice dataward promote manpages@v1 --reason "first trusted baseline"

step "4. The scraper submits a poisoned batch; the gate runs on the server as a job"
as scraper dataward contribute manpages "$IN/batch-scraper.csv" --source "https://forum.example/scrape/2026-11-24" \
  --html "$CLIENT/gate-report.html" || true
as bob dataward review list manpages | head -n 12
as bob dataward reject manpages#2 --reason "backdoor trigger tied to one label"

step "5. Containment: the scraper's key is revoked and refused on its very next request"
as alice dataward key revoke "dw_$(echo "${KEYS[scraper]}" | cut -d_ -f2)" --reason "bot submitted a poisoned batch"
as scraper dataward versions manpages || true

step "6. Audit from a client: access review, ledger, export, anchored verify"
as admin dataward access review --unused-days 0
as admin dataward ledger -n 8
as alice dataward export manpages@training -o "$CLIENT/training.parquet"
as admin dataward ledger public-key -o "$CLIENT/ward-public-key.pem"
as admin dataward checkpoint -o "$CLIENT/checkpoint.json" >/dev/null
as admin dataward verify --checkpoint "$CLIENT/checkpoint.json" --public-key "$CLIENT/ward-public-key.pem"

step "Done"
say "client files (export, gate report, checkpoint, public key): $CLIENT"
say "server log: $WORK/server.log"
