#!/usr/bin/python3
"""bench/lib/rateload.py: a fixed-rate HTTP/1.1 load generator (Debian's wrk has no -R, h2load's --rps hangs).

Request i is due at t0 + i/RATE (an open-loop schedule); CONNS keep-alive connections take due requests
from one queue, so a slow response delays later requests instead of silently lowering the rate, and latency
is measured from the scheduled time (no coordinated omission). Connections are opened before the first
request is due. HTTPS is not verified (like wrk). Prints one
line: key=value pairs for bench/run.sh. Standard library only; every loop is bounded by the duration.
"""
import argparse
import asyncio
import ssl
import time
import urllib.parse


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, close = None, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and "close" in value:
            close = True
    if chunked:
        for _ in range(1 << 20):  # bounded: at most a million chunks per response
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()  # body delimited by close
        close = True
    return status, close


async def worker(args, ctx, queue, stats, deadline):
    url = urllib.parse.urlsplit(args.url)
    port = url.port or (443 if ctx else 80)
    path = (url.path or "/") + ("?" + url.query if url.query else "")
    host = args.host or url.netloc
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wtmesh-bench-rateload\r\n\r\n".encode()
    # Connect before the schedule starts (like wrk2), so TLS handshakes are not counted as request
    # latency; a connection lost later is re-opened on the clock.
    reader = writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(url.hostname, port, ssl=ctx),
                                                timeout=args.timeout)
        stats["connects"] += 1
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        stats["errors"] += 1
    stats["ready"] += 1
    while time.monotonic() < deadline:
        try:
            due = await asyncio.wait_for(queue.get(), timeout=max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if due is None:
            break
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(url.hostname, port, ssl=ctx)
                stats["connects"] += 1
            writer.write(request)
            status, close = await asyncio.wait_for(read_response(reader), timeout=args.timeout)
            stats["latencies"].append(time.monotonic() - due)
            stats["status"][status] = stats["status"].get(status, 0) + 1
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ValueError, IndexError):
            stats["errors"] += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--host", default="")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args()

    queue = asyncio.Queue(maxsize=int(args.rate * 2) + 16)  # cap: two seconds of backlog
    stats = {"latencies": [], "status": {}, "errors": 0, "connects": 0, "dropped": 0, "ready": 0}
    ctx = None
    if args.url.startswith("https:"):
        # One context, no trust store: create_default_context() per connection loads the system CAs,
        # tens of ms each, which showed up as a 0.4 s stall at the start of every run.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    setup_deadline = time.monotonic() + args.timeout
    worker_deadline = setup_deadline + args.duration + 2 * args.timeout
    workers = [asyncio.create_task(worker(args, ctx, queue, stats, worker_deadline)) for _ in range(args.conns)]
    while stats["ready"] < args.conns and time.monotonic() < setup_deadline:
        await asyncio.sleep(0.005)
    t0 = time.monotonic() + 0.05
    end = t0 + args.duration
    total = int(args.rate * args.duration)
    for i in range(total):
        due = t0 + i / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            queue.put_nowait(due)
        except asyncio.QueueFull:
            stats["dropped"] += 1
    for _ in workers:
        try:
            queue.put_nowait(None)
        except asyncio.QueueFull:
            pass
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - t0
    lat = sorted(stats["latencies"])

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")

    ok = sum(n for s, n in stats["status"].items() if 200 <= s < 300)
    codes = ",".join(f"{s}:{n}" for s, n in sorted(stats["status"].items())) or "none"
    print(f"scheduled={total} done={len(lat)} ok={ok} errors={stats['errors']} dropped={stats['dropped']} "
          f"connects={stats['connects']} elapsed={elapsed:.3f} rate={len(lat) / elapsed:.1f} "
          f"p50_ms={pct(0.5):.3f} p99_ms={pct(0.99):.3f} codes={codes}")


if __name__ == "__main__":
    asyncio.run(main())
