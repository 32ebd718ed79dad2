#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for scripts/chaos: plain HTTP on 127.0.0.1:LISTEN in front,
a TLS registry behind (verified against CA). Each request gets its own upstream connection
(`Connection: close`), so faults apply per request. With probability RATE a request gets one
fault, chosen at random: a reset (close without answering), a truncated body (half of it,
then close), a 503, or a 429 with `Retry-After: 0`. Seeded, so a campaign is repeatable up
to thread scheduling.

    proxy.py LISTEN_PORT UPSTREAM_HOST:PORT CA_FILE RATE SEED
Prints one line per request to stderr: METHOD PATH FAULT.
"""
import random
import socket
import ssl
import sys
import threading

port, upstream, ca, rate, seed = (
    int(sys.argv[1]),
    sys.argv[2],
    sys.argv[3],
    float(sys.argv[4]),
    int(sys.argv[5]),
)
uhost, uport = upstream.rsplit(":", 1)
rng = random.Random(seed)
lock = threading.Lock()
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False  # the certificate names IP 127.0.0.1; chain still verified


def pick():
    with lock:
        if rng.random() >= rate:
            return None
        return rng.choice(["reset", "truncate", "503", "429"])


def read_head(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line.rstrip(b"\r\n"))


def serve(client):
    try:
        f = client.makefile("rb")
        head = read_head(f)
        if not head:
            return
        method, path = head[0].split(b" ")[0:2]
        length = 0
        for h in head[1:]:
            k, _, v = h.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        body = f.read(length) if length else b""
        fault = pick()
        sys.stderr.write(f"{method.decode()} {path.decode()} {fault}\n")
        if fault == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        if fault in ("503", "429"):
            extra = "Retry-After: 0\r\n" if fault == "429" else ""
            client.sendall(
                f"HTTP/1.1 {fault} Injected\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n".encode()
            )
            return
        req = head[0] + b"\r\n"
        for h in head[1:]:
            low = h.lower()
            if low.startswith(b"connection:") or low.startswith(b"keep-alive:"):
                continue
            req += h + b"\r\n"
        req += b"Connection: close\r\nX-Forwarded-Proto: http\r\n\r\n" + body
        up = ctx.wrap_socket(socket.create_connection((uhost, int(uport)), timeout=30), server_hostname="127.0.0.1")
        up.sendall(req)
        resp = b""
        while True:
            try:
                chunk = up.recv(65536)
            except (ssl.SSLError, OSError):
                break
            if not chunk:
                break
            resp += chunk
        up.close()
        if fault == "truncate":
            split = resp.find(b"\r\n\r\n")
            split = len(resp) if split < 0 else split + 4
            resp = resp[: split + (len(resp) - split) // 2]
        client.sendall(resp)
    except Exception as e:  # a fault on our side is just another fault for the client
        sys.stderr.write(f"proxy error: {e}\n")
    finally:
        try:
            client.close()
        except OSError:
            pass


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
