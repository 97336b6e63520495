"""redis-py's RedisCluster against a Reredis cluster (run by tests/cluster.rs).

    redis_py_cluster.py write PORTS N      SET/GET py:0..N across slots, a pipeline across
                                           slots, multi-key commands on one hash tag, MGET
                                           split by slot
    redis_py_cluster.py replica-reads PORTS N
                                           reads key:0..N (value = index) with
                                           read_from_replicas=True

PORTS is a comma-separated list of seed ports on 127.0.0.1. Exits non-zero on any mismatch.
"""

import sys

from redis.cluster import ClusterNode, RedisCluster


def main():
    mode, ports, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seeds = [ClusterNode("127.0.0.1", int(p)) for p in ports.split(",")]
    rc = RedisCluster(
        startup_nodes=seeds,
        decode_responses=True,
        read_from_replicas=(mode == "replica-reads"),
        socket_timeout=10,
    )
    if mode == "write":
        for i in range(n):
            rc.set(f"py:{i}", i)
        for i in range(n):
            got = rc.get(f"py:{i}")
            assert got == str(i), (i, got)
        pipe = rc.pipeline()
        for i in range(100):
            pipe.incr(f"py:{i}")
        assert pipe.execute() == [i + 1 for i in range(100)]
        rc.mset({"{tag}a": "1", "{tag}b": "2"})
        assert rc.mget("{tag}a", "{tag}b") == ["1", "2"]
        keys = [f"py:{i}" for i in range(200, 300)]
        assert rc.mget_nonatomic(keys) == [str(i) for i in range(200, 300)]
        assert rc.keyslot("foo") == 12182
        masters = [node for node in rc.get_nodes() if node.server_type == "primary"]
        assert len(masters) >= 1, rc.get_nodes()
    elif mode == "replica-reads":
        for i in range(n):
            got = rc.get(f"key:{i}")
            assert got == str(i), (i, got)
        replicas = [node for node in rc.get_nodes() if node.server_type == "replica"]
        assert replicas, rc.get_nodes()
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("ok", mode, n)


if __name__ == "__main__":
    main()
