#!/usr/bin/env python3
"""Idle-socket flood against a real chatd-server (docs/hardening.md, "Measured").

Starts the release binary on a temporary SQLite database, measures /healthz latency and the
server's RSS at rest, opens N idle sockets from helper processes (none sends a byte), probes
/healthz on fresh connections while they are open, closes them, and measures again.

    cargo build --release -p server-example
    python3 scripts/bench_idle_sockets.py [--sockets 20000] [--hold 15] [--bin target/release/chatd-server]
        [--server-arg=--max-connections=1000000 ...]

Prints one JSON document. The baseline (latency, RSS and descriptors at rest) is measured in
the same run; `--rounds N` floods N times in a row (memory must not keep growing).

With `--subscribers N` the sockets are idle chat stream subscribers instead: the script
creates a chat (one turn of the demo model), measures the server at rest, then opens N
WebSockets on `GET /api/experimental/chats/{chat}/stream`, reads each one's snapshot frame,
leaves them idle and reports the server's RSS growth per subscriber (docs/hardening.md,
"Idle stream subscribers"):

    python3 scripts/bench_idle_sockets.py --subscribers 500 [--turns 1]
"""
import argparse
import base64
import json
import multiprocessing as mp
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ADMIN_TOKEN = "chatd_bench_admin_token"
API = "/api/experimental"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def health_ms(port: int, timeout: float = 5.0) -> float:
    """One GET /healthz on a fresh connection; milliseconds, or inf on failure."""
    start = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            return float("inf")
    except OSError:
        return float("inf")
    return (time.perf_counter() - start) * 1000.0


def holder(port: int, count: int, hold: float, ready, result) -> None:
    """Opens `count` idle sockets, holds them, reports how many the server closed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    failed = 0
    for _ in range(count):
        try:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            failed += 1
    ready.set()
    time.sleep(hold)
    closed = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    result.put({"opened": len(socks), "connect_failed": failed, "closed_by_server": closed})


def percentile(values, p):
    v = sorted(values)
    if not v:
        return None
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def probe(port: int, n: int):
    times = [health_ms(port) for _ in range(n)]
    ok = [t for t in times if t != float("inf")]
    return {
        "probes": n,
        "failed": n - len(ok),
        "p50_ms": round(statistics.median(ok), 3) if ok else None,
        "max_ms": round(max(ok), 3) if ok else None,
    }


def flood_round(args, pid: int) -> dict:
    """One flood: open the idle sockets, measure while they are held, close, measure after."""
    ready_events = []
    result = mp.Queue()
    procs = []
    per = 9000  # below each helper's descriptor limit
    remaining = args.sockets
    while remaining > 0:
        n = min(per, remaining)
        ev = mp.Event()
        p = mp.Process(target=holder, args=(args.port, n, args.hold, ev, result))
        p.start()
        procs.append(p)
        ready_events.append(ev)
        remaining -= n
    for ev in ready_events:
        ev.wait()
    time.sleep(1.0)
    flood = {"rss_kib": rss_kib(pid), "fds": open_fds(pid), **probe(args.port, 50)}
    peak = flood["rss_kib"]
    deadline = time.time() + args.hold - 2
    while time.time() < deadline:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.25)
    flood["peak_rss_kib"] = peak
    holders = [result.get() for _ in procs]
    for p in procs:
        p.join()
    time.sleep(5)
    after = {"rss_kib": rss_kib(pid), "fds": open_fds(pid), **probe(args.port, 50)}
    time.sleep(max(0.0, args.settle - 5))
    settled = {"rss_kib": rss_kib(pid), "fds": open_fds(pid), **probe(args.port, 50)}
    return {
        "during_flood": flood,
        "after_5s": after,
        f"after_{args.settle:g}s": settled,
        "holders": holders,
    }


def api(port: int, method: str, path: str, body=None):
    """One JSON API call as the admin; the decoded answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{API}{path}", data=data, method=method,
        headers={"Coder-Session-Token": ADMIN_TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def wait_waiting(port: int, chat_id: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if api(port, "GET", f"/chats/{chat_id}")["status"] == "waiting":
            return
        time.sleep(0.1)
    raise RuntimeError(f"chat {chat_id} did not finish its turn")


def make_chat(port: int, turns: int) -> str:
    """A chat with `turns` finished turns of the demo model; its id."""
    text = {"content": [{"type": "text", "text": "hello"}]}
    chat_id = api(port, "POST", "/chats", text)["id"]
    wait_waiting(port, chat_id)
    for _ in range(turns - 1):
        api(port, "POST", f"/chats/{chat_id}/messages", text)
        wait_waiting(port, chat_id)
    return chat_id


def open_subscriber(port: int, chat_id: str) -> socket.socket:
    """A WebSocket on the chat's stream, its snapshot frame read; then left idle."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((
        f"GET {API}/chats/{chat_id}/stream?coder_session_token={ADMIN_TOKEN} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    # The snapshot frame: a server frame is unmasked; read its header and payload.
    while len(rest) < 2:
        rest += s.recv(65536)
    length = rest[1] & 0x7F
    header = 2
    if length == 126:
        header = 4
    elif length == 127:
        header = 10
    while len(rest) < header:
        rest += s.recv(65536)
    if length == 126:
        length = int.from_bytes(rest[2:4], "big")
    elif length == 127:
        length = int.from_bytes(rest[2:10], "big")
    while len(rest) < header + length:
        rest += s.recv(65536)
    return s


def subscribers_round(args, pid: int, chat_id: str) -> dict:
    """Opens the idle subscribers, measures while they are held, closes, measures after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    before = rss_kib(pid)
    socks = [open_subscriber(args.port, chat_id) for _ in range(args.subscribers)]
    time.sleep(args.hold)
    held = {"rss_kib": rss_kib(pid), "fds": open_fds(pid), **probe(args.port, 50)}
    grown = held["rss_kib"] - before
    held["growth_kib"] = grown
    held["kib_per_subscriber"] = round(grown / max(1, len(socks)), 1)
    for s in socks:
        s.close()
    time.sleep(5)
    after = {"rss_kib": rss_kib(pid), "fds": open_fds(pid), **probe(args.port, 50)}
    return {"rss_before_kib": before, "held": held, "after_5s": after}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=20000)
    ap.add_argument("--hold", type=float, default=15.0)
    ap.add_argument("--bin", default="target/release/chatd-server")
    ap.add_argument("--port", type=int, default=3917)
    ap.add_argument("--rounds", type=int, default=1,
                    help="floods in a row; memory after each shows whether it keeps growing")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="seconds after the sockets close before the last measurement")
    ap.add_argument("--subscribers", type=int, default=0,
                    help="open this many idle chat stream subscribers instead of bare sockets")
    ap.add_argument("--turns", type=int, default=1,
                    help="with --subscribers: finished turns in the chat they subscribe to")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra `serve` flag, repeatable; e.g. --server-arg=--max-connections=1000000 "
                         "--server-arg=--header-read-timeout=1h --server-arg=--idle-timeout=1h "
                         "approximates the unbounded server of before (the same-run baseline)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="chatd-idle-")
    env = dict(os.environ)
    env.update(
        CHATD_ADMIN_TOKEN=ADMIN_TOKEN,
        CHATD_MAX_WEBSOCKETS_PER_USER=str(max(64, args.subscribers)),
        CHATD_LOG="warn",
        CHATD_LISTEN=f"127.0.0.1:{args.port}",
        CHATD_DATABASE_URL=f"sqlite://{tmp}/chatd.db",
    )
    server = subprocess.Popen([args.bin, "serve", *args.server_arg], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if health_ms(args.port, 0.5) != float("inf"):
                break
            time.sleep(0.05)
        chat_id = make_chat(args.port, args.turns) if args.subscribers else None
        for _ in range(200):
            health_ms(args.port)
        time.sleep(1)
        rest = {"rss_kib": rss_kib(server.pid), "fds": open_fds(server.pid), **probe(args.port, 50)}

        rounds = []
        for _ in range(args.rounds):
            if args.subscribers:
                rounds.append(subscribers_round(args, server.pid, chat_id))
            else:
                rounds.append(flood_round(args, server.pid))
        print(json.dumps({
            "sockets": args.subscribers or args.sockets,
            "kind": "stream subscribers" if args.subscribers else "bare sockets",
            "load_avg": os.getloadavg(),
            "server_args": args.server_arg,
            "hold_s": args.hold,
            "at_rest": rest,
            "rounds": rounds,
        }, indent=2))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
