"""How long one principal's small contribution waits while a bot keeps the server's jobs busy.

A new ward is served in this process (uvicorn on loopback, the server's default settings). A bot (a
service principal of ``alice``) sends ``--bot-jobs`` gated contributions of ``--bot-rows`` rows at
once, polling none of them; then ``carol``, another human, sends one of ``--carol-rows`` rows and polls
it to its end, as ``dataward contribute`` does. Reported: the HTTP status of each of the bot's
submissions (202 queued, 429 refused), carol's wall time, and the time until every accepted bot job
ended. Carol's contribution alone, before the bot starts, is timed first, as the baseline.

Run it on two source trees to compare schedulers (FIFO on two threads, or the fair one)::

    PYTHONPATH=src python benchmarks/bench_job_fairness.py --label fair
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

from dataward.client import HTTPWard
from dataward.domain.schema import Schema
from dataward.server import ServerSettings, create_app
from dataward.service.ward import Ward

RESULTS = Path(__file__).parent / "results"
FEATURES = [f"f{i}" for i in range(8)]
TRUSTING = "approvals:\n  required: 0\ngate:\n  detectors: [duplicates]\nfirst_import: self-reference\n"
GATED = "approvals:\n  required: 0\n"  # the default gate


def write_rows(path: Path, n: int, seed: int) -> Path:
    """``n`` rows of three Gaussian classes over ``FEATURES``, as CSV."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    values = rng.normal(size=(n, len(FEATURES))) + labels[:, None]
    lines = [",".join([*FEATURES, "label"])]
    lines += [",".join([*(f"{v:.5f}" for v in row), f"c{label}"]) for row, label in zip(values, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prepare(root: Path, trusted_rows: int) -> tuple[Path, dict[str, str]]:
    """A ward with a merged trusted dataset ``tab`` under the default gate, and keys for the bot and carol."""
    folder = root / "ward"
    ward, admin_key = Ward.init(folder)
    ward.create_dataset("tab", Schema.parse("label", [f"{f}:numeric" for f in FEATURES]))
    ward.set_policy("tab", TRUSTING)
    ward.merge(ward.contribute("tab", write_rows(root / "trusted.csv", trusted_rows, 0), source="curated")["ref"])
    ward.promote("tab@v1", reason="the trusted baseline")
    ward.set_policy("tab", GATED)
    ward.create_principal("alice")
    ward.create_principal("scraper", kind="service", owner="alice")
    ward.create_principal("carol")
    for who in ("scraper", "carol"):
        ward.grant(who, "contributor", "dataset:tab")
    keys = {who: ward.issue_key(who)["key"] for who in ("scraper", "carol")}
    ward.db.dispose()
    return folder, keys | {"admin": admin_key}


def serve(folder: Path) -> tuple[uvicorn.Server, threading.Thread, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(create_app(ServerSettings(ward=folder)), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def carol_contributes(url: str, key: str, data: Path, source: str) -> float:
    start = time.monotonic()
    info = HTTPWard(url, key=key).contribute("tab", data, source=source)
    assert info.get("ref"), info
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="names the result file: job_fairness-LABEL.json")
    parser.add_argument("--trusted-rows", type=int, default=3000)
    parser.add_argument("--bot-jobs", type=int, default=6)
    parser.add_argument("--bot-rows", type=int, default=3000)
    parser.add_argument("--carol-rows", type=int, default=50)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-job-fairness-"))
    folder, keys = prepare(root, args.trusted_rows)
    server, thread, url = serve(folder)
    try:
        carol_file = write_rows(root / "carol.csv", args.carol_rows, 99)
        baseline = carol_contributes(url, keys["carol"], carol_file, "https://vendor.example/a")
        bot = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {keys['scraper']}"}, timeout=600
        )
        statuses: list[int] = []
        accepted: list[str] = []
        started = time.monotonic()
        for i in range(args.bot_jobs):
            data = write_rows(root / f"bot{i}.csv", args.bot_rows, 100 + i).read_bytes()
            upload = bot.post("/uploads", params={"filename": f"bot{i}.csv"}, content=data).json()["upload"]
            answer = bot.post(
                "/datasets/tab/contributions", json={"upload": upload, "source": f"https://scrape.example/{i}"}
            )
            statuses.append(answer.status_code)
            if answer.status_code == 202:
                accepted.append(answer.json()["id"])
        retry_after = None
        refused: dict[str, Any] | None = None
        while_busy = carol_contributes(url, keys["carol"], carol_file, "https://vendor.example/b")
        for job_id in accepted:
            while bot.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running"):
                time.sleep(0.2)
        bot_done = time.monotonic() - started
        if 429 in statuses:  # one more, to show the refusal as a client sees it
            data = write_rows(root / "bot-x.csv", 10, 7).read_bytes()
            for _ in range(args.bot_jobs):
                upload = bot.post("/uploads", params={"filename": "x.csv"}, content=data).json()["upload"]
                answer = bot.post(
                    "/datasets/tab/contributions", json={"upload": upload, "source": "https://scrape.example/x"}
                )
                if answer.status_code == 429:
                    refused, retry_after = answer.json(), answer.headers.get("Retry-After")
                    break
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    result = {
        "label": args.label,
        "args": vars(args),
        "carol_alone_s": round(baseline, 2),
        "carol_while_bot_busy_s": round(while_busy, 2),
        "bot_submission_statuses": statuses,
        "bot_accepted_jobs_all_ended_s": round(bot_done, 2),
        "refusal": refused,
        "retry_after": retry_after,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"job_fairness-{args.label}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
