"""audit.merkle against brute-force RFC 9162 definitions, for every small size and random sets."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(str(i).encode()) for i in range(n)]


def brute_root(items: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 2.1.1 (independent of merkle.root)."""
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return items[0]
    k = 1
    while k * 2 < len(items):
        k *= 2
    return hashlib.sha256(b"\x01" + brute_root(items[:k]) + brute_root(items[k:])).digest()


def test_hash_prefixes_follow_rfc6962():
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    # known RFC 6962 empty-tree and one-leaf values
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_roots_and_frontier_match_brute_force_for_sizes_up_to_130():
    for n in range(131):
        items = leaves(n)
        expected = brute_root(items)
        assert merkle.root(items) == expected
        assert merkle.root_of_stream(items) == expected


def test_frontier_resumes_from_its_hex_form():
    items = leaves(77)
    frontier = merkle.Frontier()
    for i, leaf in enumerate(items):
        frontier = merkle.Frontier.from_hex(frontier.size, frontier.to_hex())
        frontier.append(leaf)
        assert frontier.root() == brute_root(items[: i + 1])


def test_inclusion_proofs_verify_and_reject_wrong_leaves():
    for n in range(1, 40):
        items = leaves(n)
        r = brute_root(items)
        for i in range(n):
            proof = merkle.inclusion_proof(i, items)
            assert merkle.verify_inclusion(i, n, items[i], proof, r)
            assert not merkle.verify_inclusion(i, n, merkle.leaf_hash(b"x"), proof, r)
            if n > 1:
                assert not merkle.verify_inclusion((i + 1) % n, n, items[i], proof, r)


def test_consistency_proofs_verify_and_reject_forks():
    for n in range(1, 34):
        items = leaves(n)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, items)
            assert merkle.verify_consistency(m, n, brute_root(items[:m]), brute_root(items), proof)
            forked = [*items[:m - 1], merkle.leaf_hash(b"fork")]
            assert not merkle.verify_consistency(m, n, brute_root(forked), brute_root(items), proof)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=300).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.integers(min_value=0, max_value=max(n - 1, 0)), max_size=n))
))
def test_multiproof_recomputes_the_root_for_any_subset(case):
    n, subset = case
    subset = sorted(p for p in subset if p < n)
    items = leaves(n)
    members = merkle.PositionRuns.from_positions(subset)
    others = iter([items[i] for i in range(n) if i not in set(subset)])
    proof = list(merkle.multiproof(n, members, others))
    assert next(others, None) is None  # consumed exactly the non-members
    got = merkle.root_from_multiproof(n, subset, [items[i] for i in subset], iter(proof))
    assert got == brute_root(items)
    if subset and n > 1:  # a changed member leaf changes the root
        changed = [items[i] for i in subset]
        changed[0] = merkle.leaf_hash(b"changed")
        assert merkle.root_from_multiproof(n, subset, changed, iter(proof)) != brute_root(items)


def test_position_runs_count():
    runs = merkle.PositionRuns([(2, 5), (7, 8), (10, 20)])
    positions = {2, 3, 4, 7, *range(10, 20)}
    for lo in range(0, 22):
        for hi in range(lo, 23):
            assert runs.count(lo, hi) == len([p for p in positions if lo <= p < hi])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.lists(st.integers(min_value=0, max_value=70), max_size=6))
def test_extend_equals_appending_one_leaf_at_a_time(start, batches):
    items = leaves(start + sum(batches))
    one_by_one = merkle.Frontier()
    for leaf in items[:start]:
        one_by_one.append(leaf)
    batched = merkle.Frontier.from_hex(one_by_one.size, one_by_one.to_hex())
    done = start
    for size in batches:
        batched.extend(items[done:done + size])
        for leaf in items[done:done + size]:
            one_by_one.append(leaf)
        done += size
        assert (batched.size, batched.stack) == (one_by_one.size, one_by_one.stack)
        assert batched.root() == brute_root(items[:done])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=200).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(min_value=0, max_value=n), st.sets(st.integers(min_value=0, max_value=n - 1)))))
def test_multiproof_from_a_prefix_frontier_needs_no_leaf_below_it(case):
    """Leaves below a retention boundary are gone; the frontier at the boundary stands in for them."""
    n, boundary, chosen = case
    members = sorted(p for p in chosen if p >= boundary)
    items = leaves(n)
    prefix = merkle.Frontier()
    prefix.extend(items[:boundary])
    runs = merkle.PositionRuns.from_positions(members)
    full = list(merkle.multiproof(n, runs, iter([items[i] for i in range(n) if i not in set(members)])))
    tail = iter([items[i] for i in range(boundary, n) if i not in set(members)])
    proof = list(merkle.multiproof(n, runs, tail, prefix=prefix))
    assert proof == full
    assert next(tail, None) is None
    assert merkle.root_from_multiproof(n, members, [items[i] for i in members], iter(proof)) == brute_root(items)


def test_a_complete_range_proof_is_the_frontier_of_its_start():
    """What an export of positions first..n-1 carries: the frontier at `first`, folding to its root."""
    items = leaves(77)
    for first in range(0, 77):
        start = merkle.Frontier()
        start.extend(items[:first])
        runs = merkle.PositionRuns([(first, 77)])
        proof = list(merkle.multiproof(77, runs, iter(items[:first])))
        assert proof == start.stack
        assert merkle.fold(proof) == brute_root(items[:first])
