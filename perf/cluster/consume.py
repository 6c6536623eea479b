#!/usr/bin/env python3
"""Drain a stream's backlog through a consumer group: CONSUMERS processes, each looping
XREADGROUP GROUP g cN COUNT n STREAMS s > and XACK s g <exactly those IDs>, until a read comes
back empty. Prints the number of entries consumed and acknowledged.

With `pipelined`, a consumer sends the XACK of a batch and the XREADGROUP of the next one in
one write and reads both replies (as a client that acknowledges asynchronously does), so
each batch costs the server one round trip instead of two.

    consume.py HOST CONSUMERS COUNT [pipelined]"""

import multiprocessing
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Conn, RespError  # noqa: E402


def answer(c):
    """The next reply on `c`, raising an error reply."""
    r = c.read()
    if isinstance(r, RespError):
        raise r
    return r


def entry_ids(reply):
    if not reply or not reply[0][1]:
        return []
    return [e[0] for e in reply[0][1]]


def consumer(host, name, count, pipelined, result):
    c = Conn(host)
    read = ("XREADGROUP", "GROUP", "g", name, "COUNT", count, "STREAMS", "s", ">")
    done = 0
    ids = entry_ids(c.call(*read))
    while ids:
        if pipelined:
            c.send(("XACK", "s", "g", *ids), read)
            acked, following = answer(c), answer(c)
        else:
            acked = c.call("XACK", "s", "g", *ids)
            following = c.call(*read)
        if acked != len(ids):
            print("XACK acknowledged %d of %d" % (acked, len(ids)), file=sys.stderr)
        done += len(ids)
        ids = entry_ids(following)
    result.put(done)


def main():
    host, consumers, count = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pipelined = len(sys.argv) > 4 and sys.argv[4] == "pipelined"
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=consumer, args=(host, "c%d" % i, count, pipelined, q))
             for i in range(consumers)]
    for p in procs:
        p.start()
    total = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    print(total)


if __name__ == "__main__":
    main()
