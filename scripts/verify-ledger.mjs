#!/usr/bin/env node
// An independent verifier of dataward ledger exports and checkpoints, in plain Node.js (18+): no
// packages, only the built-in Ed25519 of node:crypto. BLAKE3 and RFC 8785 canonical JSON are written
// out below. The format it checks is specified in docs/ledger-format.md.
//
//   node scripts/verify-ledger.mjs --export ledger.json --public-key ward.pem [--checkpoint cp.json ...]
//   node scripts/verify-ledger.mjs --vector tests/security/vectors/ledger-vector.json
//
// The export comes from `dataward ledger export -o ledger.json`, the key from
// `dataward ledger public-key -o ward.pem` (kept outside the ward), checkpoints from
// `dataward checkpoint -o cp.json`. Exit status: 0 verified, 7 integrity problem, 2 bad usage.

import { createPublicKey, verify as edVerify } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";

// ---- BLAKE3 (hash mode, 32-byte output) --------------------------------------------------------
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8;
const BLOCK_LEN = 64, CHUNK_LEN = 1024;

const rotr = (x, n) => ((x >>> n) | (x << (32 - n))) >>> 0;

function g(s, a, b, c, d, x, y) {
  s[a] = (s[a] + s[b] + x) >>> 0; s[d] = rotr(s[d] ^ s[a], 16);
  s[c] = (s[c] + s[d]) >>> 0; s[b] = rotr(s[b] ^ s[c], 12);
  s[a] = (s[a] + s[b] + y) >>> 0; s[d] = rotr(s[d] ^ s[a], 8);
  s[c] = (s[c] + s[d]) >>> 0; s[b] = rotr(s[b] ^ s[c], 7);
}

function compress(cv, m, counter, blockLen, flags) {
  const s = [...cv, IV[0], IV[1], IV[2], IV[3], counter % 0x100000000, Math.floor(counter / 0x100000000), blockLen, flags];
  let w = m.slice();
  for (let r = 0; r < 7; r++) {
    g(s, 0, 4, 8, 12, w[0], w[1]); g(s, 1, 5, 9, 13, w[2], w[3]);
    g(s, 2, 6, 10, 14, w[4], w[5]); g(s, 3, 7, 11, 15, w[6], w[7]);
    g(s, 0, 5, 10, 15, w[8], w[9]); g(s, 1, 6, 11, 12, w[10], w[11]);
    g(s, 2, 7, 8, 13, w[12], w[13]); g(s, 3, 4, 9, 14, w[14], w[15]);
    w = PERM.map((i) => w[i]);
  }
  for (let i = 0; i < 8; i++) { s[i] = (s[i] ^ s[i + 8]) >>> 0; s[i + 8] = (s[i + 8] ^ cv[i]) >>> 0; }
  return s;
}

function words(bytes) {
  const block = new Uint8Array(BLOCK_LEN);
  block.set(bytes);
  const out = [];
  for (let i = 0; i < 16; i++) out.push((block[4 * i] | (block[4 * i + 1] << 8) | (block[4 * i + 2] << 16) | (block[4 * i + 3] << 24)) >>> 0);
  return out;
}

function chunkCV(chunk, index, root) {
  let cv = IV.slice();
  const blocks = Math.max(1, Math.ceil(chunk.length / BLOCK_LEN));
  for (let b = 0; b < blocks; b++) {
    const block = chunk.subarray(b * BLOCK_LEN, (b + 1) * BLOCK_LEN);
    const last = b === blocks - 1;
    const flags = (b === 0 ? CHUNK_START : 0) | (last ? CHUNK_END : 0) | (last && root ? ROOT : 0);
    cv = compress(cv, words(block), index, block.length, flags).slice(0, 8);
  }
  return cv;
}

function subtree(input, first, count, root) {
  if (count === 1) return chunkCV(input.subarray(first * CHUNK_LEN, (first + 1) * CHUNK_LEN), first, root);
  const left = 2 ** Math.floor(Math.log2(count - 1));
  const l = subtree(input, first, left, false);
  const r = subtree(input, first + left, count - left, false);
  return compress(IV, [...l, ...r], 0, BLOCK_LEN, PARENT | (root ? ROOT : 0)).slice(0, 8);
}

export function blake3Hex(input) {
  const bytes = input instanceof Uint8Array ? input : new TextEncoder().encode(input);
  const cv = subtree(bytes, 0, Math.max(1, Math.ceil(bytes.length / CHUNK_LEN)), true);
  return cv.map((x) => [0, 8, 16, 24].map((sh) => ((x >>> sh) & 0xff).toString(16).padStart(2, "0")).join("")).join("");
}

// ---- RFC 8785 canonical JSON --------------------------------------------------------------------
// JSON.stringify already writes numbers as ECMAScript does and escapes strings as RFC 8785 asks;
// what is left is sorting object keys by UTF-16 code units (JavaScript's default string order).
export function canonical(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error("non-finite number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  const keys = Object.keys(value).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
}

// ---- the dataward formats (docs/ledger-format.md) -----------------------------------------------
const GENESIS = "b3:" + "0".repeat(64);
const EVENT_DOMAIN = "dataward:ledger-event:v2\u0000";
const CHECKPOINT_DOMAIN = "dataward:checkpoint:v1\u0000";
const utf8 = (text) => Buffer.from(text, "utf8");

export function eventBody(e) {
  const body = { seq: e.seq, prev: e.prev, time: e.time, actor: e.actor, type: e.type, subject: e.subject, payload: e.payload };
  if ((e.format ?? 1) !== 1) body.format = e.format;
  return body;
}

export function eventHash(e) {
  return "b3:" + blake3Hex(utf8(canonical(eventBody(e))));
}

export function eventMessage(e, ward) {
  if ((e.format ?? 1) === 1) return utf8(e.hash);
  return utf8(EVENT_DOMAIN + canonical({ hash: e.hash, seq: e.seq, ward }));
}

export function checkpointMessage(cp) {
  const { sig, ...body } = cp;
  return utf8(CHECKPOINT_DOMAIN + canonical(body));
}

export function publicKey(text) {
  text = text.trim();
  if (text.startsWith("-----BEGIN")) return createPublicKey(text);
  const x = Buffer.from(text, "base64").toString("base64url");
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
}

const sigOk = (key, message, sig) => {
  try { return edVerify(null, message, key, Buffer.from(sig, "base64")); } catch { return false; }
};

// Re-check a chain export, and that it extends each checkpoint; returns a list of problems.
export function verifyLedger(exported, key, checkpoints = []) {
  const problems = [];
  const ward = exported.ward;
  let expectedSeq = 1, expectedPrev = GENESIS, newest = 1, legacy = 0;
  const bySeq = new Map();
  for (const e of exported.events) {
    const format = e.format ?? 1;
    bySeq.set(e.seq, e);
    if (e.seq !== expectedSeq) problems.push({ event: e.seq, kind: "gap", detail: `expected #${expectedSeq}` });
    if (e.prev !== expectedPrev) problems.push({ event: e.seq, kind: "broken_link" });
    if (format !== 1 && format !== 2) problems.push({ event: e.seq, kind: "unknown_format" });
    else {
      if (format < newest) problems.push({ event: e.seq, kind: "downgraded" });
      newest = Math.max(newest, format);
      // Format 1 hashed Python's own JSON spelling of numbers; only its signature and links are checked here.
      if (format === 1) legacy++;
      else if (eventHash(e) !== e.hash) problems.push({ event: e.seq, kind: "altered" });
      if (!sigOk(key, eventMessage(e, ward), e.sig)) problems.push({ event: e.seq, kind: "bad_signature" });
    }
    expectedSeq = e.seq + 1;
    expectedPrev = e.hash;
  }
  for (const cp of checkpoints) {
    if (cp.type !== "dataward.checkpoint" || cp.format !== 1) { problems.push({ kind: "not_a_checkpoint" }); continue; }
    if (cp.ward !== ward) { problems.push({ kind: "wrong_ward", detail: cp.ward }); continue; }
    if (!sigOk(key, checkpointMessage(cp), cp.sig)) { problems.push({ kind: "bad_checkpoint_signature", detail: `#${cp.seq}` }); continue; }
    if (cp.seq === 0) continue;
    const e = bySeq.get(cp.seq);
    if (!e) {
      let first = 1;
      while (bySeq.has(first)) first++;
      problems.push({ event: first, kind: "missing", detail: `checkpoint covers #${cp.seq}` });
    } else if (e.hash !== cp.head) problems.push({ event: cp.seq, kind: "rewritten" });
  }
  return { problems, legacy };
}

function checkVector(path) {
  const v = JSON.parse(readFileSync(path, "utf8"));
  const failures = [];
  for (const c of v.expected.blake3) {
    const input = Uint8Array.from({ length: c.length }, (_, i) => i % 251);
    if (blake3Hex(input) !== c.hash) failures.push(`blake3 of ${c.length} bytes`);
  }
  for (const want of v.expected.events) {
    const e = v.ledger.events.find((x) => x.seq === want.seq);
    if ((e.format ?? 1) !== 1 && canonical(eventBody(e)) !== want.canonical) failures.push(`canonical JSON of #${want.seq}`);
    if ((e.format ?? 1) !== 1 && eventHash(e) !== want.hash) failures.push(`hash of #${want.seq}`);
    if (eventMessage(e, v.ledger.ward).toString("hex") !== want.signed_message_hex) failures.push(`signed message of #${want.seq}`);
  }
  if (checkpointMessage(v.checkpoint).toString("hex") !== v.expected.checkpoint.signed_message_hex) failures.push("checkpoint message");
  const key = publicKey(v.public_key_pem);
  if (publicKey(v.public_key).export({ format: "jwk" }).x !== key.export({ format: "jwk" }).x) failures.push("public key forms");
  const { problems } = verifyLedger(v.ledger, key, [v.checkpoint]);
  for (const p of problems) failures.push(`chain: ${JSON.stringify(p)}`);
  return failures;
}

function main(argv) {
  const args = { checkpoint: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, "");
    if (!["export", "public-key", "checkpoint", "vector"].includes(name) || argv[i + 1] === undefined) {
      console.error("usage: verify-ledger.mjs --export FILE --public-key FILE [--checkpoint FILE ...] | --vector FILE");
      return 2;
    }
    if (name === "checkpoint") args.checkpoint.push(argv[i + 1]);
    else args[name] = argv[i + 1];
  }
  if (args.vector) {
    const failures = checkVector(args.vector);
    for (const f of failures) console.log(`FAIL ${f}`);
    console.log(failures.length ? `vector: ${failures.length} failure(s)` : "vector: every hash, message and signature checks out");
    return failures.length ? 7 : 0;
  }
  if (!args.export || !args["public-key"]) return main([]);
  const exported = JSON.parse(readFileSync(args.export, "utf8"));
  const key = publicKey(readFileSync(args["public-key"], "utf8"));
  const checkpoints = args.checkpoint.map((p) => JSON.parse(readFileSync(p, "utf8")));
  const { problems, legacy } = verifyLedger(exported, key, checkpoints);
  for (const p of problems) console.log(`${p.event !== undefined ? `event #${p.event}: ` : ""}${p.kind}${p.detail ? ` (${p.detail})` : ""}`);
  const first = problems.filter((p) => p.event !== undefined).map((p) => p.event).sort((a, b) => a - b)[0];
  if (first !== undefined) console.log(`first missing or rewritten event: #${first}`);
  const note = legacy ? ` (${legacy} format-1 event(s): signatures and links checked, bodies not re-hashed)` : "";
  console.log(problems.length
    ? `ledger of ${exported.ward}: ${problems.length} problem(s)`
    : `ledger of ${exported.ward}: ${exported.events.length} events verified, ${checkpoints.length} checkpoint(s) extended${note}`);
  return problems.length ? 7 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exit(main(process.argv.slice(2)));
}
