#!/usr/bin/env python3
"""Verify a smarthome audit export offline (Python standard library + `cryptography` only).

Usage: verify_audit_export.py FILE --public-key KEYS.pem   (keys from GET /api/v1/audit/public-key)
The statement, signed by the service, names each log's rows (a complete range first..end, or
listed positions) and their number: the rows must be exactly those - none removed, added, repeated
or moved - and, with the RFC 9162 proofs, hash to each log's signed checkpoints.
Leaf = SHA-256(0x00 || compact ASCII JSON ["v2", <the row's fields as strings>]).
"""
import argparse
import base64
import csv
import hashlib
import json
import re
import sys
from bisect import bisect_left

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

FIELDS = ["id", "occurred_at", "actor_kind", "actor_ref", "action", "outcome", "object_type", "object_ref",
          "partner_id", "company_id", "building_id", "device_ref", "reason", "request_id", "source_ip",
          "latency_ms", "http_status", "origin_request_id"]
FORMAT = "smarthome-audit-export/v2"
H = lambda data: hashlib.sha256(data).digest()  # noqa: E731
LEAF = lambda row: H(b"\x00" + json.dumps(["v2", *row], separators=(",", ":")).encode("ascii"))  # noqa: E731


def check(condition, problem):  # not `assert`: python -O must not skip a check
    if not condition:
        raise ValueError(problem)


def read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        if handle.readline().startswith("id,"):  # CSV: header, rows, then ["#proof", trailer JSON]
            rows = [r for r in csv.reader(handle) if r]
            return [r for r in rows if r[0] != "#proof"], json.loads(rows[-1][1])
        handle.seek(0)
        objects = [json.loads(line) for line in handle if line.strip()]
        return [[o[f] for f in FIELDS] for o in objects[:-1]], objects[-1]


def signed(keys, doc, message, what):  # doc: {"key_id", "signature" or "value"}
    try:
        keys[doc["key_id"]].verify(base64.b64decode(doc.get("signature") or doc["value"]), message.encode())
    except (KeyError, InvalidSignature):
        raise ValueError(f"{what}: signature invalid, or by a key not in the key file") from None


def check_log(entry, leaves, proof, keys):
    log, first, end, start, size = entry["log"], entry["first"], entry["end"], entry["start"], entry["end"]["tree_size"]
    check(len(leaves) == entry["rows"], f"{log}: {len(leaves)} rows, the signed statement says {entry['rows']}")
    for cp in filter(None, (end, start)):
        signed(keys, cp, f"smarthome-audit-checkpoint/v2\n{log}\n{cp['tree_size']}\n{cp['root_hash']}\n"
               f"{cp['signed_at']}\n", f"{log}: checkpoint {cp['tree_size']}")
    runs = entry["positions"] if "positions" in entry else [[first, size - first]]
    positions = [p for begin, n in runs for p in range(begin, begin + n)]
    check(positions == sorted(set(positions)) and len(positions) == len(leaves)
          and all(first <= p < size for p in positions), f"{log}: rows do not fit the signed range {first}..{size - 1}")
    hashes = iter(proof)

    def root(lo, hi):  # RFC 9162 tree shape; subtrees without exported rows come from the proof
        i = bisect_left(positions, lo)
        if bisect_left(positions, hi) == i:
            return next(hashes)
        if hi - lo == 1:
            return leaves[i]
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        return H(b"\x01" + root(lo, lo + k) + root(lo + k, hi))

    check(root(0, size).hex() == end["root_hash"] and next(hashes, None) is None,
          f"{log}: rows do not hash to the signed checkpoint {size} (altered, removed, added, repeated or moved)")
    if start and "positions" not in entry:  # the proof is the frontier of the first `first` leaves
        node = proof[-1]
        for left in reversed(proof[:-1]):
            node = H(b"\x01" + left + node)
        check(start["tree_size"] == first and node.hex() == start["root_hash"], f"{log}: not from checkpoint {first}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--public-key", required=True, help="PEM file with one or more public keys")
    args = parser.parse_args()
    rows, trailer = read(args.file)
    with open(args.public_key, encoding="ascii") as handle:
        pems = re.findall(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", handle.read(), re.S)
    keys = {H(k.public_bytes(Encoding.Raw, PublicFormat.Raw)).hex(): k for k in (load_pem_public_key(p.encode())
                                                                                  for p in pems)}
    st = trailer["statement"]
    check(st.get("format") == FORMAT, f"not a {FORMAT} file (older exports prove no completeness)")
    signed(keys, trailer["signature"], FORMAT + "\n" + json.dumps(st, sort_keys=True, separators=(",", ":")),
           "export statement")
    check(not st.get("missing"), f"event rows deleted from the log at {st.get('missing')}")
    sealed = sum(entry["rows"] for entry in st["logs"])
    check(len(rows) == sealed + st["unsealed"]["rows"], f"the file holds {len(rows)} rows, the signed statement "
          f"{sealed + st['unsealed']['rows']} (rows added or removed)")
    check(H(b"".join(map(LEAF, rows[sealed:]))).hex() == st["unsealed"]["leaves_sha256"], "unsealed rows changed")
    groups = {}
    for row in rows[:sealed]:
        groups.setdefault(f"company:{row[9]}" if row[9] else "platform", []).append(LEAF(row))
    for entry in st["logs"]:
        check_log(entry, groups.pop(entry["log"], []), [bytes.fromhex(h) for h in trailer["proofs"][entry["log"]]],
                  keys)
    check(not groups, f"rows of logs the signed statement does not list: {sorted(groups)}")
    kind = "filtered subset" if st["filtered"] else "complete ranges"
    print(f"OK: {sealed} rows in {len(st['logs'])} logs ({kind}) proven; {len(rows) - sealed} unsealed")


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # any failure is a verification failure
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
