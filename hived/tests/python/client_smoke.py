"""Drives a hived node with the Python `redis` package (redis-py), RESP2 and
RESP3, and fails loudly on any difference from what Redis would answer (the
script passes unchanged against redis-server).

Usage: python client_smoke.py PORT PREFIX
"""

import sys

import redis


def check(port: int, prefix: str, protocol: int) -> None:
    r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)
    k = lambda name: f"{prefix}:{protocol}:{name}"  # noqa: E731

    assert r.ping() is True
    assert r.set(k("s"), "v") is True
    assert r.get(k("s")) == "v"
    assert r.set(k("s"), "w", nx=True) is None
    assert r.set(k("s"), "w", xx=True, get=True) == "v"
    assert r.incr(k("n")) == 1
    assert r.incrby(k("n"), 41) == 42
    assert r.append(k("s"), "!") == 2
    assert r.expire(k("s"), 100) is True
    assert 0 < r.ttl(k("s")) <= 100
    assert r.hset(k("h"), mapping={"a": "1", "b": "2"}) == 2
    assert r.hgetall(k("h")) == {"a": "1", "b": "2"}
    assert r.hmget(k("h"), ["a", "zz"]) == ["1", None]
    assert r.rpush(k("l"), "x", "y", "z") == 3
    assert r.lrange(k("l"), 0, -1) == ["x", "y", "z"]
    assert r.lpop(k("l"), 2) == ["x", "y"]
    assert r.sadd(k("set"), "m1", "m2") == 2
    assert r.smembers(k("set")) == {"m1", "m2"}
    assert r.zadd(k("z"), {"ada": 2.5, "bob": 1}) == 2
    # redis-py gives (member, score) tuples in RESP2 and lists in RESP3.
    scored = [tuple(pair) for pair in r.zrange(k("z"), 0, -1, withscores=True)]
    assert scored == [("bob", 1.0), ("ada", 2.5)], scored
    assert r.zscore(k("z"), "ada") == 2.5
    assert r.type(k("z")) == "zset"
    try:
        r.lpush(k("s"), "oops")
        raise AssertionError("LPUSH on a string must fail")
    except redis.ResponseError as err:
        assert str(err).startswith("WRONGTYPE"), err
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.set(k(f"p{i}"), i)
    pipe.get(k("p99"))
    assert pipe.execute()[-1] == "99"
    assert r.delete(k("s"), k("n"), k("missing")) == 2


def main() -> None:
    port, prefix = int(sys.argv[1]), sys.argv[2]
    for protocol in (2, 3):
        check(port, prefix, protocol)
    print("ok")


if __name__ == "__main__":
    main()
