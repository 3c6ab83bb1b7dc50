#!/usr/bin/env python3
"""Small TCP peers for the tcp tunnel tests (tests/peers/tcp_*.sh), standard library only.

Servers print "listening PORT" on stdout once bound to 127.0.0.1, then one line per event.
  serve-count                  per connection: read to EOF, answer "got N bytes sha256 HEX", close
                               (answers only after the client's FIN: a half-close check)
  serve-proxy                  per connection: parse a PROXY protocol v2 header strictly, answer
                               "proxy SRC_IP:SRC_PORT DST_IP:DST_PORT" (or "proxy error: why"), then echo
  serve-echo                   per connection: every byte back as it comes; FIN after the client's FIN
  serve-hold                   accept and hold connections; print "reset" when a peer resets one
  serve-rst                    per connection: read a line, then close with RST (SO_LINGER 0)
Clients (exit 0 when what they check holds, else print why and exit 1):
  halfclose PORT NBYTES        send NBYTES, shutdown(SHUT_WR), expect the serve-count answer for them
  proxy PORT TUNNEL_PORT       expect serve-proxy to report this socket's own address and TUNNEL_PORT
  rst PORT                     connect, send a byte, close with RST (the far side should see a reset)
  expect-rst PORT              send a line, expect the connection reset (by serve-rst)
  hold PORT N SECONDS          open N connections, check each stays open SECONDS (echo through serve-proxy
                               is not needed: a connection that is reset or closed fails)
  refused PORT                 expect the connection reset or closed at once without data
  expect-end PORT SECONDS      connect, print "open", expect a reset or EOF within SECONDS
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def out(*a):
    print(*a, flush=True)


def listen():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    out("listening", s.getsockname()[1])
    return s


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        chunk = c.recv(n - len(buf))
        if not chunk:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def rst_close(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def serve(handler):
    s = listen()
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()


def h_count(c):
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
        h.update(d)
    c.sendall(b"got %d bytes sha256 %s\n" % (n, h.hexdigest().encode()))
    c.close()


def h_echo(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    c.close()


def h_proxy(c):
    try:
        head = recv_exact(c, 16)
        if head[:12] != SIG:
            raise ValueError("no v2 signature: %r" % head)
        ver_cmd, fam, length = head[12], head[13], struct.unpack("!H", head[14:16])[0]
        body = recv_exact(c, length)
        if ver_cmd != 0x21:
            raise ValueError("version/command 0x%02x, want 0x21 (v2 PROXY)" % ver_cmd)
        if fam == 0x11:
            if length < 12:
                raise ValueError("IPv4 block of %d bytes" % length)
            src, dst = socket.inet_ntop(socket.AF_INET, body[0:4]), socket.inet_ntop(socket.AF_INET, body[4:8])
            sp, dp = struct.unpack("!HH", body[8:12])
        elif fam == 0x21:
            if length < 36:
                raise ValueError("IPv6 block of %d bytes" % length)
            src, dst = socket.inet_ntop(socket.AF_INET6, body[0:16]), socket.inet_ntop(socket.AF_INET6, body[16:32])
            sp, dp = struct.unpack("!HH", body[32:36])
        else:
            raise ValueError("family/protocol 0x%02x" % fam)
        msg = "proxy %s:%d %s:%d" % (src, sp, dst, dp)
    except Exception as e:  # noqa: BLE001 - reported to the client and the log
        msg = "proxy error: %s" % e
    out(msg)
    c.sendall(msg.encode() + b"\n")
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()


def h_hold(c):
    try:
        while c.recv(65536):
            pass
        out("eof")
    except ConnectionResetError:
        out("reset")
    c.close()


def h_rst(c):
    f = c.makefile("rb")
    f.readline()
    rst_close(c)
    out("sent rst")


def connect(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def read_line(c):
    buf = b""
    while not buf.endswith(b"\n"):
        d = c.recv(4096)
        if not d:
            break
        buf += d
    return buf.decode(errors="replace").strip()


def c_halfclose(port, n):
    data = os.urandom(n)
    c = connect(port)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    got = read_line(c)
    want = "got %d bytes sha256 %s" % (n, hashlib.sha256(data).hexdigest())
    if got != want:
        out("answer %r, want %r" % (got, want))
        return 1
    return 0


def c_proxy(port, tunnel_port):
    c = connect(port)
    ip, sport = c.getsockname()[:2]
    got = read_line(c)
    want = "proxy %s:%d 127.0.0.1:%d" % (ip, sport, tunnel_port)
    if got != want:
        out("header %r, want %r" % (got, want))
        return 1
    c.sendall(b"after the header\n")
    echo = read_line(c)
    if echo != "after the header":
        out("echo %r" % echo)
        return 1
    return 0


def c_rst(port):
    c = connect(port)
    c.sendall(b"x")
    time.sleep(0.3)
    rst_close(c)
    return 0


def c_expect_rst(port):
    c = connect(port)
    c.sendall(b"line\n")
    try:
        while True:
            if not c.recv(4096):
                out("clean EOF, want a reset")
                return 1
    except ConnectionResetError:
        return 0


def c_hold(port, n, secs):
    conns = [connect(port) for _ in range(n)]
    for c in conns:
        c.setblocking(False)
    end = time.time() + secs
    while time.time() < end:
        for i, c in enumerate(conns):
            try:
                d = c.recv(1)
                out("connection %d ended (%r)" % (i, d))
                return 1
            except BlockingIOError:
                pass
            except OSError as e:
                out("connection %d: %s" % (i, e))
                return 1
        time.sleep(0.1)
    out("held %d" % n)
    sys.stdin.readline()  # kept open until the test closes our stdin
    return 0


def c_refused(port):
    try:
        c = connect(port)
        c.settimeout(5)
        d = c.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return 0  # reset, possibly before we could even set an option
    except socket.timeout:
        out("still open after 5 s")
        return 1
    if d:
        out("got data %r" % d)
        return 1
    return 0  # closed at once


def c_expect_end(port, secs):
    c = connect(port)
    c.settimeout(secs)
    out("open")
    try:
        d = c.recv(1)
    except ConnectionResetError:
        return 0
    except socket.timeout:
        out("still open after %s s" % secs)
        return 1
    if d:
        out("got data %r" % d)
        return 1
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    servers = {"serve-count": h_count, "serve-echo": h_echo, "serve-proxy": h_proxy, "serve-hold": h_hold, "serve-rst": h_rst}
    if cmd in servers:
        serve(servers[cmd])
    clients = {
        "halfclose": lambda: c_halfclose(int(args[0]), int(args[1])),
        "proxy": lambda: c_proxy(int(args[0]), int(args[1])),
        "rst": lambda: c_rst(int(args[0])),
        "expect-rst": lambda: c_expect_rst(int(args[0])),
        "hold": lambda: c_hold(int(args[0]), int(args[1]), float(args[2])),
        "refused": lambda: c_refused(int(args[0])),
        "expect-end": lambda: c_expect_end(int(args[0]), float(args[1])),
    }
    return clients[cmd]()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
