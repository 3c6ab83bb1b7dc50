#!/usr/bin/env python3
"""Small UDP peers for the udp tunnel tests (tests/peers/udp_tunnel.sh), standard library only.

Server (prints "listening PORT" on stdout once bound to 127.0.0.1, then one line per new source):
  serve-echo                   answer every packet: "WHO" -> "from IP:PORT" (the source it saw),
                               "BIG N" -> N bytes of b"B", anything else -> the same bytes back;
                               prints "source IP:PORT" the first time a source address is seen
Clients (exit 0 when what they check holds, else print why and exit 1). Each ask is retried up to
3 times with a 1 s wait, since UDP may lose a packet; answers are matched by content.
  ping PORT                    one echo
  flows PORT N ROUNDS          N sockets (N flows) at once, each ROUNDS distinct echoes, all must match;
                               then "WHO" on each: N different sources (one agent socket per flow)
  cap PORT HELD                HELD sockets each get an echo; one more socket gets no answer to 3
                               tries (past the flow cap); the HELD ones still get echoes
  big PORT SIZE                a SIZE-byte packet gets no answer (too large for the tunnel), and a
                               small one right after does (the tunnel lives)
  bigreply PORT SIZE           asks the service for a SIZE-byte answer: none arrives; a small echo does
  idle PORT SECONDS            "WHO" twice, SECONDS apart, on one socket: prints both sources and
                               exits 0 when they differ (the flow expired and a new one was made)
  noanswer PORT                a packet sent 3 times gets no answer at all (a refused connect)
"""
import os
import select
import socket
import sys
import time


def server_echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print("listening", s.getsockname()[1], flush=True)
    seen = set()
    while True:
        data, addr = s.recvfrom(65535)
        src = "%s:%d" % addr
        if src not in seen:
            seen.add(src)
            print("source", src, flush=True)
        if data == b"WHO":
            s.sendto(("from " + src).encode(), addr)
        elif data.startswith(b"BIG "):
            s.sendto(b"B" * int(data[4:]), addr)
        else:
            s.sendto(data, addr)


def client(timeout=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    return s


def ask(s, port, payload, tries=3, want=None):
    """Sends payload and returns the answer matching `want` (default: payload itself; True: any; a
    function: one it accepts), or None."""
    want = payload if want is None else want
    for _ in range(tries):
        s.sendto(payload, ("127.0.0.1", port))
        deadline = time.monotonic() + s.gettimeout()
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(65535)
            except socket.timeout:
                break
            if want is True or (callable(want) and want(data)) or data == want:
                return data
    return None


def fail(why):
    print(why, flush=True)
    sys.exit(1)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "serve-echo":
        return server_echo()
    port = int(args[0])
    if mode == "ping":
        if ask(client(), port, b"ping " + os.urandom(4).hex().encode()) is None:
            fail("no echo")
        print("pong")
    elif mode == "flows":
        n, rounds = int(args[1]), int(args[2])
        socks = [client(2.0) for _ in range(n)]
        want = {i: {b"flow %d round %d" % (i, r) for r in range(rounds)} for i in range(n)}
        # All sockets send before any reads: the flows are open at the same time.
        for r in range(rounds):
            for i, s in enumerate(socks):
                s.sendto(b"flow %d round %d" % (i, r), ("127.0.0.1", port))
        # Answers are read from every socket at once; what is still missing after a 2 s quiet spell
        # is asked again (UDP may lose a packet), at most 3 times, so this ends within ~10 s.
        by_fd = {s.fileno(): i for i, s in enumerate(socks)}
        asks = 0
        quiet_since = time.monotonic()
        while any(want.values()):
            ready, _, _ = select.select([socks[i] for i in want if want[i]], [], [], 0.2)
            for s in ready:
                i = by_fd[s.fileno()]
                data, _ = s.recvfrom(65535)
                if not data.startswith(b"flow %d " % i):
                    fail("flow %d got another flow's answer: %r" % (i, data))
                want[i].discard(data)
                quiet_since = time.monotonic()
            if not ready and time.monotonic() - quiet_since > 2.0:
                if asks == 3:
                    break
                asks += 1
                quiet_since = time.monotonic()
                for i, missing in want.items():
                    for p in missing:
                        socks[i].sendto(p, ("127.0.0.1", port))
        missing = sum(len(m) for m in want.values())
        if missing:
            fail("%d of %d echoes missing after %d asks again" % (missing, n * rounds, asks))
        # One agent socket per flow: the service names a different source to each. (Asked here, of
        # these sockets, all open at once: a count of the service's sources over the whole test would
        # also see an earlier client whose port the system gave again to one of these, whose flow the
        # edge then still had, and rightly so: same address, same flow.)
        sources = set()
        for i, s in enumerate(socks):
            # (A late echo of a packet asked again may still be on its way: skip it.)
            who = ask(s, port, b"WHO", want=lambda d: d.startswith(b"from "))
            if who is None:
                fail("flow %d: no answer to WHO (got %r)" % (i, who))
            sources.add(who)
        if len(sources) != n:
            fail("the service saw %d sources for %d flows" % (len(sources), n))
        print("ok %d flows x %d (%d asks again), %d sources" % (n, rounds, asks, len(sources)))
    elif mode == "cap":
        held = [client() for _ in range(int(args[1]))]
        for i, s in enumerate(held):
            if ask(s, port, b"held %d" % i) is None:
                fail("held flow %d got no echo" % i)
        print("held", len(held), flush=True)
        extra = client(0.7)
        if ask(extra, port, b"extra") is not None:
            fail("a flow past the cap was answered")
        print("extra dropped", flush=True)
        for i, s in enumerate(held):
            if ask(s, port, b"again %d" % i) is None:
                fail("held flow %d got no echo after the extra one" % i)
        print("others ok")
    elif mode == "big":
        s = client(1.0)
        if ask(s, port, b"X" * int(args[1]), tries=1) is not None:
            fail("a %s-byte packet was echoed" % args[1])
        if ask(s, port, b"small") is None:
            fail("no echo after the large packet")
        print("big dropped, small ok")
    elif mode == "bigreply":
        s = client(1.0)
        if ask(s, port, b"BIG %d" % int(args[1]), tries=1, want=True) is not None:
            fail("a %s-byte answer arrived" % args[1])
        if ask(s, port, b"small") is None:
            fail("no echo after the large answer")
        print("big answer dropped, small ok")
    elif mode == "idle":
        s = client()
        a = ask(s, port, b"WHO", want=True)
        time.sleep(float(args[1]))
        b = ask(s, port, b"WHO", want=True)
        print("first", a, "then", b)
        if a is None or b is None or a == b:
            sys.exit(1)
    elif mode == "noanswer":
        if ask(client(1.0), port, b"anyone", want=True) is not None:
            fail("an answer arrived")
        print("no answer")
    else:
        fail("unknown mode " + mode)


if __name__ == "__main__":
    main()
