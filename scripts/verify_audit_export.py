#!/usr/bin/env python3
"""Verify a smarthome audit export offline (Python standard library + `cryptography` only).

Usage: verify_audit_export.py FILE --public-key KEY.pem   (key from GET /api/v1/audit/public-key)
Checks the checkpoint's Ed25519 signature and that the file's sealed rows, with the trailer's
RFC 9162 multiproof, hash to the signed root: no row altered, removed, added or reordered.
Leaf = SHA-256(0x00 || compact ASCII JSON ["v1", <the row's fields as strings>]).
"""
import argparse
import base64
import csv
import hashlib
import json
import sys
from bisect import bisect_left

from cryptography.hazmat.primitives.serialization import load_pem_public_key

FIELDS = ["id", "occurred_at", "actor_kind", "actor_ref", "action", "outcome", "object_type", "object_ref",
          "partner_id", "company_id", "building_id", "device_ref", "reason", "request_id", "source_ip",
          "latency_ms", "http_status"]
H = lambda data: hashlib.sha256(data).digest()  # noqa: E731


def check(condition, problem):  # not `assert`: python -O must not skip a check
    if not condition:
        raise ValueError(problem)


def read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        if handle.readline().startswith("position,"):  # CSV: header, rows, then ["#proof", trailer JSON]
            rows = [r for r in csv.reader(handle) if r]
            return [r for r in rows if r[0] != "#proof"], json.loads(rows[-1][1])
        handle.seek(0)
        objects = [json.loads(line) for line in handle if line.strip()]
        return [[o["position"], *(o[f] for f in FIELDS)] for o in objects[:-1]], objects[-1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--public-key", required=True)
    args = parser.parse_args()
    rows, trailer = read(args.file)
    sealed = [r for r in rows if r[0] != ""]
    positions = [int(r[0]) for r in sealed]
    leaves = [H(b"\x00" + json.dumps(["v1", *r[1:]], separators=(",", ":")).encode("ascii")) for r in sealed]
    cp = trailer["checkpoint"]
    message = f"smarthome-audit-checkpoint/v1\n{cp['tree_size']}\n{cp['root_hash']}\n{cp['signed_at']}\n"
    with open(args.public_key, "rb") as handle:
        load_pem_public_key(handle.read()).verify(base64.b64decode(cp["signature"]), message.encode())
    check(positions == sorted(set(positions)), "rows out of order or repeated")
    check(len(sealed) == trailer["rows"]["sealed"], "row count differs from the trailer")
    check(not positions or positions[-1] < cp["tree_size"], "a row lies beyond the checkpoint")
    check(not trailer.get("missing_rows"), f"rows deleted from the log at positions {trailer.get('missing_rows')}")
    proof = iter(bytes.fromhex(h) for h in trailer["proof"]["hashes"])

    def root(lo, hi):  # RFC 9162 tree shape; subtrees without exported rows come from the proof
        first = bisect_left(positions, lo)
        if bisect_left(positions, hi) == first:
            return next(proof)
        if hi - lo == 1:
            return leaves[first]
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        return H(b"\x01" + root(lo, lo + k) + root(lo + k, hi))

    check(root(0, cp["tree_size"]).hex() == cp["root_hash"], "rows do not hash to the signed root")
    check(next(proof, None) is None, "proof longer than needed")
    print(f"OK: {len(sealed)} rows proven in tree of {cp['tree_size']}; {len(rows) - len(sealed)} unsealed")


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # any failure is a verification failure
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
