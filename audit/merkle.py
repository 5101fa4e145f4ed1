"""RFC 9162 (RFC 6962) Merkle trees: hashing, roots, inclusion, consistency and multiproofs.

Leaf hash = SHA-256(0x00 || leaf bytes), node hash = SHA-256(0x01 || left || right); a tree of
n leaves splits at k, the largest power of two below n (RFC 9162 section 2.1.1). Everything
here works on 32-byte hashes; `audit.canonical` says which bytes an event contributes.
"""

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) by the recursive definition (reference implementation, O(n) memory)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = split_point(n)
    return node_hash(root(leaves[:k]), root(leaves[k:]))


class Frontier:
    """The right edge of a growing tree: one perfect-subtree hash per set bit of its size.

    Appending is amortised O(1) hashes and the root needs O(log n), so the sealer extends
    the log without reading old leaves, and verifiers stream through any number of leaves.
    """

    __slots__ = ("size", "stack")

    def __init__(self, size: int = 0, stack: Iterable[bytes] = ()):
        self.size = size
        self.stack = list(stack)  # perfect subtree hashes, largest (leftmost) first
        if len(self.stack) != size.bit_count():
            raise ValueError("frontier does not match the tree size")

    def append(self, leaf: bytes) -> None:
        node = leaf
        size = self.size
        stack = self.stack
        while size & 1:
            node = _sha256(b"\x01" + stack.pop() + node).digest()
            size >>= 1
        stack.append(node)
        self.size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append many leaves at once: the same result as `append` for each, level by level
        (one list comprehension of node hashes per level instead of a Python loop per leaf)."""
        if not leaves:
            return
        size = self.size
        bits = [level for level in range(size.bit_length()) if size >> level & 1]
        old = dict(zip(reversed(bits), self.stack, strict=True))  # level -> perfect subtree hash
        new: dict[int, bytes] = {}
        nodes = list(leaves)
        index, level = size, 0  # index (at this level) of nodes[0]
        sha = _sha256
        while nodes:
            if index & 1:  # nodes[0] is a right child: its left sibling waits in the frontier
                nodes.insert(0, old.pop(level))
                index -= 1
            if len(nodes) & 1:
                new[level] = nodes[-1]
            nodes = [sha(b"\x01" + nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes) - 1, 2)]
            index >>= 1
            level += 1
        old.update(new)
        self.size = size + len(leaves)
        self.stack = [old[level] for level in sorted(old, reverse=True)]

    def root(self) -> bytes:
        return fold(self.stack)

    def to_hex(self) -> list[str]:
        return [h.hex() for h in self.stack]

    @classmethod
    def from_hex(cls, size: int, stack: Iterable[str]) -> "Frontier":
        return cls(size, [bytes.fromhex(h) for h in stack])


def fold(stack: Sequence[bytes]) -> bytes:
    """The root of a tree given its frontier (perfect subtree hashes, largest first)."""
    if not stack:
        return EMPTY_ROOT
    node = stack[-1]
    for left in reversed(stack[:-1]):
        node = node_hash(left, node)
    return node


def root_of_stream(leaves: Iterable[bytes]) -> bytes:
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


# --- inclusion proofs (RFC 9162 2.1.3) -------------------------------------------------------


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf `index` in the tree of `leaves`."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError("index outside the tree")
    if n == 1:
        return []
    k = split_point(n)
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does `proof` put `leaf` at `index` of the tree of `size` with `expected_root`?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


# --- consistency proofs (RFC 9162 2.1.4) -----------------------------------------------------


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): proves the tree of the first `old_size` leaves is a prefix of `leaves`."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ValueError("old size must be in 1..n")
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = split_point(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    proof = list(proof)
    if old_size & (old_size - 1) == 0:  # exact power of two: the old root is the first node
        proof = [old_root, *proof]
    if not proof:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# --- multiproofs: many leaves of one tree at once ---------------------------------------------
#
# The proof of a set S of leaf positions in a tree of size n is the list, in left-to-right
# order, of the hashes of the maximal subtrees (RFC 9162 shape) that hold no position of S.
# Exporting every leaf needs no hash at all; k scattered leaves need about k*log2(n/k).


class PositionRuns:
    """A sorted set of positions as (start, end) runs, counting members of a range in O(log r)."""

    def __init__(self, runs: Iterable[tuple[int, int]]):
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.before: list[int] = []  # members in the runs before this one
        total = 0
        for start, end in runs:
            if self.ends and start < self.ends[-1]:
                raise ValueError("runs must be sorted and disjoint")
            self.starts.append(start)
            self.ends.append(end)
            self.before.append(total)
            total += end - start
        self.total = total

    @classmethod
    def from_positions(cls, positions: Iterable[int]) -> "PositionRuns":
        runs: list[tuple[int, int]] = []
        for p in positions:
            if runs and runs[-1][1] == p:
                runs[-1] = (runs[-1][0], p + 1)
            else:
                runs.append((p, p + 1))
        return cls(runs)

    def _rank(self, x: int) -> int:
        """Members < x."""
        i = bisect_left(self.ends, x + 1) if self.ends else 0
        # runs before i end at or before x; run i (if any) may contain x
        count = self.before[i] if i < len(self.starts) else self.total
        if i < len(self.starts) and self.starts[i] < x:
            count += x - self.starts[i]
        return count

    def count(self, lo: int, hi: int) -> int:
        return self._rank(hi) - self._rank(lo)


def multiproof(size: int, members: PositionRuns, others: Iterator[bytes], prefix: Frontier | None = None
               ) -> Iterator[bytes]:
    """Yield the multiproof of `members` in the tree of `size`.

    `others` yields the leaf hashes of every position NOT in `members`, in position order
    (a database cursor: the proof never needs the members' leaves nor holds the tree).
    With `prefix` (the frontier of the first `prefix.size` leaves, none of them a member),
    `others` starts at position `prefix.size`: leaves below it may be gone (retention).
    """
    start = prefix.size if prefix else 0
    perfect = _perfect_subtrees(prefix) if prefix else {}

    def subtree(lo: int, hi: int) -> bytes:
        if (lo, hi) in perfect:
            return perfect[(lo, hi)]
        if lo < start:  # straddles the prefix boundary: split along the tree's own shape
            k = split_point(hi - lo)
            return node_hash(subtree(lo, lo + k), subtree(lo + k, hi))
        frontier = Frontier()
        frontier.extend([next(others) for _ in range(hi - lo)])
        return frontier.root()

    def walk(lo: int, hi: int):
        covered = members.count(lo, hi)
        if covered == hi - lo:
            return
        if covered == 0:
            yield subtree(lo, hi)
            return
        k = split_point(hi - lo)
        yield from walk(lo, lo + k)
        yield from walk(lo + k, hi)

    if size:
        yield from walk(0, size)


def _perfect_subtrees(frontier: Frontier) -> dict[tuple[int, int], bytes]:
    """(lo, hi) -> hash for each perfect subtree of a frontier, left to right."""
    out = {}
    lo = 0
    levels = [level for level in range(frontier.size.bit_length()) if frontier.size >> level & 1]
    for level, node in zip(reversed(levels), frontier.stack, strict=True):
        out[(lo, lo + (1 << level))] = node
        lo += 1 << level
    return out


def root_from_multiproof(size: int, positions: Sequence[int], leaves: Sequence[bytes], proof: Iterator[bytes]) -> bytes:
    """The root implied by `leaves` at sorted `positions` plus `proof` (raises StopIteration if short)."""
    def walk(lo: int, hi: int) -> bytes:
        first = bisect_left(positions, lo)
        covered = bisect_left(positions, hi) - first
        if covered == 0:
            return next(proof)
        if hi - lo == 1:
            return leaves[first]
        k = split_point(hi - lo)
        return node_hash(walk(lo, lo + k), walk(lo + k, hi))

    if size == 0:
        return EMPTY_ROOT
    return walk(0, size)
