#!/usr/bin/env python3
"""gRPC peer for tests/peers/grpc_*.sh, on Debian's python3-grpcio (no protoc: generic handlers,
messages are raw bytes).

  grpc_peer.py server [--cert FILE --key FILE]
      serves wtmesh.test.Echo on 127.0.0.1 (h2c, or TLS with the given certificate) and prints
      "origin listening on PORT":
        Unary(msg)  -> b"echo:" + msg, trailing metadata x-echo-trailer: yes;
                       msg b"fail" -> INVALID_ARGUMENT "unary failed as asked" (a trailers-only answer)
        Bidi(msgs)  -> b"bidi:" + msg for each msg, as each arrives;
                       msg b"fail" -> after the replies so far, ABORTED "stream failed after N" (real
                       trailers, after DATA)
  grpc_peer.py client TARGET AUTHORITY CA_FILE
      calls through TARGET (host:port of the edge's public TLS port, SNI and :authority AUTHORITY)
      and prints one "ok ..." / "not ok ..." line per check.
"""
import argparse
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "wtmesh.test.Echo"


def serve(args):
    def unary(request, context):
        if request == b"fail":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unary failed as asked")
        context.set_trailing_metadata((("x-echo-trailer", "yes"),))
        return b"echo:" + request

    def bidi(request_iterator, context):
        n = 0
        for msg in request_iterator:
            if msg == b"fail":
                context.abort(grpc.StatusCode.ABORTED, "stream failed after %d" % n)
            n += 1
            yield b"bidi:" + msg

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    if args.cert:
        with open(args.key, "rb") as k, open(args.cert, "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("origin listening on %d" % port, flush=True)
    server.wait_for_termination()


def client(args):
    with open(args.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    options = [
        ("grpc.ssl_target_name_override", args.authority.split(":")[0]),
        ("grpc.default_authority", args.authority),
    ]
    failures = 0

    def check(ok, what):
        nonlocal failures
        print(("ok " if ok else "not ok ") + what, flush=True)
        if not ok:
            failures += 1

    with grpc.secure_channel(args.target, creds, options=options) as ch:
        unary = ch.unary_unary("/%s/Unary" % SERVICE)
        bidi = ch.stream_stream("/%s/Bidi" % SERVICE)

        reply, call = unary.with_call(b"hello", timeout=20)
        trailers = dict(call.trailing_metadata() or ())
        check(reply == b"echo:hello" and call.code() == grpc.StatusCode.OK,
              "unary: %r, status %s" % (reply, call.code()))
        check(trailers.get("x-echo-trailer") == "yes", "unary: trailing metadata %r" % trailers)

        big = bytes(range(256)) * 4096  # 1 MiB: many DATA frames, then the trailers
        reply = unary(big, timeout=30)
        check(reply == b"echo:" + big, "unary 1 MiB echoed (%d bytes back)" % len(reply))

        try:
            unary(b"fail", timeout=20)
            check(False, "unary error: no error")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and e.details() == "unary failed as asked",
                  "unary error: %s %r" % (e.code(), e.details()))

        # Bidirectional streaming, lock-step: each reply must come back before the next message is
        # sent, so nothing on the way may hold a message until the stream ends.
        requests = []
        cond = threading.Condition()
        done = [False]

        def gen():
            i = 0
            while True:
                with cond:
                    while len(requests) <= i and not done[0]:
                        cond.wait()
                    if i >= len(requests):
                        return
                    m = requests[i]
                i += 1
                yield m

        def send(m):
            with cond:
                requests.append(m)
                cond.notify_all()

        stream = bidi(gen(), timeout=30)
        got = []
        t0 = time.monotonic()
        for i in range(3):
            send(b"m%d" % i)
            got.append(next(stream))
        with cond:
            done[0] = True
            cond.notify_all()
        rest = list(stream)
        check(got == [b"bidi:m0", b"bidi:m1", b"bidi:m2"] and rest == [],
              "bidi lock-step: %r in %.2fs" % (got, time.monotonic() - t0))
        check(stream.code() == grpc.StatusCode.OK, "bidi: status %s" % stream.code())

        stream = bidi(iter([b"a", b"b", b"fail", b"never"]), timeout=20)
        got = []
        try:
            for r in stream:
                got.append(r)
            check(False, "bidi error: no error (%r)" % got)
        except grpc.RpcError as e:
            check(got == [b"bidi:a", b"bidi:b"] and e.code() == grpc.StatusCode.ABORTED
                  and e.details() == "stream failed after 2",
                  "bidi error after messages (trailers): %r %s %r" % (got, e.code(), e.details()))
    return 1 if failures else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--cert")
    s.add_argument("--key")
    c = sub.add_parser("client")
    c.add_argument("target")
    c.add_argument("authority")
    c.add_argument("ca")
    args = p.parse_args()
    if args.cmd == "server":
        serve(args)
    else:
        sys.exit(client(args))


if __name__ == "__main__":
    main()
