#!/usr/bin/env python3
"""Drain a stream's backlog through a consumer group: CONSUMERS processes, each looping
XREADGROUP GROUP g cN COUNT n STREAMS s > and XACK s g <exactly those IDs>, until a read comes
back empty. Prints the number of entries consumed and acknowledged.

    consume.py HOST CONSUMERS COUNT"""

import multiprocessing
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Conn  # noqa: E402


def consumer(host, name, count, result):
    c = Conn(host)
    done = 0
    while True:
        r = c.call("XREADGROUP", "GROUP", "g", name, "COUNT", count, "STREAMS", "s", ">")
        if not r or not r[0][1]:
            break
        ids = [e[0] for e in r[0][1]]
        acked = c.call("XACK", "s", "g", *ids)
        if acked != len(ids):
            print("XACK acknowledged %d of %d" % (acked, len(ids)), file=sys.stderr)
        done += len(ids)
    result.put(done)


def main():
    host, consumers, count = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=consumer, args=(host, "c%d" % i, count, q))
             for i in range(consumers)]
    for p in procs:
        p.start()
    total = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    print(total)


if __name__ == "__main__":
    main()
