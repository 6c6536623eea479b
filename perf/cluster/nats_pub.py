#!/usr/bin/env python3
"""JetStream R3 publisher (nats-py, asyncio): 100-byte messages, WINDOW publishes in flight.

    nats_pub.py setup              # stream S on subject s, file storage, 3 replicas
    nats_pub.py publish N WINDOW   # prints: published, messages/s
    nats_pub.py consume N BATCH    # durable pull consumer, fetch BATCH, ack each; prints:
                                   # consumed, messages/s"""

import asyncio
import os
import sys
import time

import nats
from nats.js.api import StorageType, StreamConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import NATS_IPS, NATS_PORT  # noqa: E402

SERVERS = ["nats://%s:%d" % (ip, NATS_PORT) for ip in NATS_IPS]


async def setup():
    nc = await nats.connect(SERVERS)
    js = nc.jetstream()
    for _ in range(100):
        try:
            await js.add_stream(StreamConfig(name="S", subjects=["s"], storage=StorageType.FILE,
                                             num_replicas=3))
            break
        except Exception:  # no JetStream meta leader yet
            await asyncio.sleep(0.2)
    # Wait until the stream has a leader and takes a publish.
    for _ in range(100):
        try:
            await js.publish("s", b"warmup", timeout=2)
            break
        except Exception:
            await asyncio.sleep(0.2)
    await js.purge_stream("S")
    await nc.close()


async def publish(n, window):
    nc = await nats.connect(SERVERS, pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    body = b"v" * 100
    sem = asyncio.Semaphore(window)
    failed = 0

    async def one():
        nonlocal failed
        try:
            await js.publish("s", body, timeout=30)
        except Exception:
            failed += 1
        finally:
            sem.release()

    tasks = []
    t = time.monotonic()
    for _ in range(n):
        await sem.acquire()
        tasks.append(asyncio.ensure_future(one()))
        if len(tasks) >= 4 * window:
            tasks = [x for x in tasks if not x.done()]
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t
    info = await js.stream_info("S")
    await nc.close()
    print(n - failed, (n - failed) / elapsed, info.state.messages)


async def consume(n, batch):
    nc = await nats.connect(SERVERS, pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    sub = await js.pull_subscribe("s", durable="g")
    done = 0
    t = time.monotonic()
    while done < n:
        try:
            msgs = await sub.fetch(batch, timeout=5)
        except asyncio.TimeoutError:
            break
        for m in msgs:
            await m.ack()  # explicit acknowledgement of each message
        done += len(msgs)
    await nc.flush()
    elapsed = time.monotonic() - t
    await nc.close()
    print(done, done / elapsed)


def main():
    if sys.argv[1] == "setup":
        asyncio.run(setup())
    elif sys.argv[1] == "consume":
        asyncio.run(consume(int(sys.argv[2]), int(sys.argv[3])))
    else:
        asyncio.run(publish(int(sys.argv[2]), int(sys.argv[3])))


if __name__ == "__main__":
    main()
