from __future__ import annotations

from tenantflow.cache import Cache


def test_lru_bound_keeps_the_recently_used() -> None:
    cache: Cache[str, int] = Cache(maxsize=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)


def test_entries_expire_after_the_ttl() -> None:
    now = [100.0]
    cache: Cache[str, str] = Cache(maxsize=10, ttl=5, clock=lambda: now[0])
    cache.put("k", "v")
    now[0] += 5
    assert cache.get("k") == "v"
    now[0] += 0.1
    assert cache.get("k") is None and len(cache) == 0


def test_forget_and_discard() -> None:
    cache: Cache[tuple[str, str, int], str] = Cache(maxsize=10)
    for n in (1, 2):
        cache.put(("ns", "wf", n), f"r{n}")
    cache.put(("ns", "other", 1), "o")
    cache.forget(lambda k: k[:2] == ("ns", "wf"))
    cache.discard(("ns", "missing", 1))
    assert [cache.get(("ns", "wf", n)) for n in (1, 2)] == [None, None]
    assert cache.get(("ns", "other", 1)) == "o"


def test_what_is_dropped_for_room_or_age_is_handed_to_on_evict() -> None:
    now, dropped = [0.0], []
    cache: Cache[str, str] = Cache(maxsize=2, ttl=5, clock=lambda: now[0], on_evict=dropped.append)
    cache.put("a", "A")
    cache.put("b", "B")
    cache.put("c", "C")  # no room for a
    now[0] = 6
    assert cache.get("b") is None  # too old
    assert dropped == ["A", "B"]
