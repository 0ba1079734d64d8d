"""The webhook receiver under drip-fed connections: does a real client still get its answer in time?

Starts the receiver (``--server front``: the project's front, ``tasks/webhooks/front.py``;
``--server uvicorn``: the same app under plain uvicorn, as ``webhook serve`` ran it before) in a
child process on 127.0.0.1 with its log in a file, then opens ``--connections`` drip-fed
connections from worker processes (half drip headers, half declare a body and drip it, one byte
every 2 s; a connection the server closes is reopened, so N stay in play), and while they are
held, sends a valid ``hub.challenge`` GET and a valid event POST every half second on fresh
connections. Prints: connections the server held, the probes' answer times (median, max, how
many took over 2 s or failed), the server's log size and lines, its CPU and RSS. Asserts nothing.

Bounded: ``--seconds`` of probing after a ramp of at most ``--ramp`` seconds; every child is
stopped at the end (by its id). Only 127.0.0.1. The process's file limit is raised to the hard
limit (``ulimit -Hn``), and each worker holds at most 9,000 connections.

Usage: ``python bench/webhook_receiver.py [--connections 20000] [--seconds 20] [--server front|uvicorn]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "bench-verify-token-0123456789"
SUBSCRIPTION = 4242
ATHLETE = 1234567
HOST = "127.0.0.1"
PER_WORKER = 9000


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- the server (child process)
def serve(
    server: str, port_file: str, deadline: float, max_connections: int | None, backlog: int, emit_to: str = "null"
) -> None:
    import logging

    from pydantic import SecretStr

    from tasks.webhooks.receiver import ReceiverConfig, build_app

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    emitted = 0

    async def emit(_event: Any) -> None:
        nonlocal emitted
        emitted += 1

    async def athletes() -> set[int]:
        return {ATHLETE}

    extra: dict[str, Any] = {}
    if emit_to == "prefect":
        from tasks.webhooks.serve import PrefectEmitter

        emitter = PrefectEmitter()
        extra = {"emit": emitter.emit, "emit_batch": emitter.emit_batch, "close": emitter.close, "warm": emitter.warm}
    app = build_app(
        ReceiverConfig(
            verify_token=SecretStr(TOKEN),
            application="bench",
            emit=extra.pop("emit", emit),
            athletes=athletes,
            subscription_id=SUBSCRIPTION,
            **extra,
        )
    )
    if server == "uvicorn":
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind((HOST, 0))
        Path(port_file).write_text(str(sock.getsockname()[1]))
        config = uvicorn.Config(app, log_level="info", access_log=False, timeout_graceful_shutdown=2)
        uvicorn.Server(config).run(sockets=[sock])
        return
    from tasks.webhooks.front import FrontLimits, ReceiverFront, raise_file_limit, settle_heap

    raise_file_limit()

    async def main() -> None:
        front = ReceiverFront(
            app,
            FrontLimits(
                request_deadline=deadline, max_connections=max_connections, report_interval=5.0, backlog=backlog
            ),
        )
        port = await front.start(HOST, 0)
        settle_heap()  # as `webhook serve` does
        Path(port_file).write_text(str(port))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await front.stop()

    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        cProfile.runctx(
            "asyncio.run(main())", globals(), {"main": main, "asyncio": asyncio}, os.environ["BENCH_PROFILE"]
        )
    else:
        asyncio.run(main())


# ---------------------------------------------------------------- the drip-feeding clients (worker processes)
class Drip(asyncio.Protocol):
    def __init__(self, pool: Pool, body: bool) -> None:
        self.pool, self.body, self.transport = pool, body, None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.pool.open.add(self)
        if self.body:
            transport.write(
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{"
            )
        else:
            transport.write(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ")

    def data_received(self, data: bytes) -> None:
        status = data[9:12].decode(errors="replace")
        self.pool.answers[status] = self.pool.answers.get(status, 0) + 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.open.discard(self)
        self.pool.closed += 1
        if self.pool.running:
            asyncio.get_running_loop().call_later(0.2, self.pool.reconnect, self.body)

    def drip(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"1" if self.body else b"a")


class Pool:
    def __init__(self, port: int) -> None:
        self.port = port
        self.open: set[Drip] = set()
        self.closed = 0
        self.failed = 0
        self.answers: dict[str, int] = {}
        self.running = True
        self.connecting = asyncio.Semaphore(300)

    def reconnect(self, body: bool) -> None:
        if self.running:
            asyncio.get_running_loop().create_task(self.connect(body))

    async def connect(self, body: bool) -> None:
        async with self.connecting:
            try:
                await asyncio.wait_for(
                    asyncio.get_running_loop().create_connection(lambda: Drip(self, body), HOST, self.port), 10
                )
            except (OSError, TimeoutError):
                self.failed += 1
                if self.running:
                    await asyncio.sleep(0.5)
                    self.reconnect(body)


async def attack(port: int, count: int, seconds: float, interval: float) -> dict[str, Any]:
    pool = Pool(port)
    loop = asyncio.get_running_loop()
    for i in range(count):
        loop.create_task(pool.connect(body=i % 2 == 1))
    end = time.monotonic() + seconds
    tick = 0.1
    slices = max(1, int(interval / tick))
    step = 0
    peak = 0
    while time.monotonic() < end:
        await asyncio.sleep(tick)
        members = list(pool.open)
        for drip in members[step % slices :: slices]:
            drip.drip()
        step += 1
        peak = max(peak, len(pool.open))
    pool.running = False
    stats = {
        "held_at_end": len(pool.open),
        "peak": peak,
        "closed_by_server": pool.closed,
        "connect_failures": pool.failed,
    }
    stats["answers"] = pool.answers
    for drip in list(pool.open):
        if drip.transport is not None:
            drip.transport.abort()
    return stats


# ---------------------------------------------------------------- the probes (main process)
CONNECT_TIMES: list[float] = []


async def probe(port: int, request: bytes, timeout: float = 5.0) -> tuple[float, str]:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
        CONNECT_TIMES.append(time.monotonic() - started)
        writer.write(request)
        remaining = timeout - (time.monotonic() - started)
        answer = await asyncio.wait_for(reader.read(65536), max(0.01, remaining))
        writer.close()
        status = answer[9:12].decode(errors="replace") or "closed"
    except (OSError, TimeoutError) as exc:
        status = type(exc).__name__
    return time.monotonic() - started, status


def challenge_request() -> bytes:
    query = f"hub.mode=subscribe&hub.challenge=c{time.monotonic_ns()}&hub.verify_token={TOKEN}"
    return f"GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def event_request() -> bytes:
    body = json.dumps(
        {
            "aspect_type": "create",
            "event_time": 1_793_000_000,
            "object_id": time.monotonic_ns() % 10**12,
            "object_type": "activity",
            "owner_id": ATHLETE,
            "subscription_id": SUBSCRIPTION,
            "updates": {},
        }
    ).encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS in MiB) of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 2**20
        return cpu, rss
    except (OSError, IndexError, ValueError):
        return -1.0, -1


async def bench(args: argparse.Namespace) -> None:
    limit = raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    port_file, log_path = work / "port", work / "server.log"
    command = [sys.executable, __file__, "serve", "--server", args.server, "--port-file", str(port_file)]
    command += ["--deadline", str(args.deadline), "--backlog", str(args.backlog)]
    if args.max_connections:
        command += ["--max-connections", str(args.max_connections)]
    children: list[subprocess.Popen[bytes]] = []
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    children.append(server)
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text():
                break
            await asyncio.sleep(0.1)
        port = int(port_file.read_text())
        await asyncio.sleep(0.5)
        workers = max(1, math.ceil(args.connections / PER_WORKER))
        per = args.connections // workers
        total = args.ramp + args.seconds
        for _ in range(workers):
            cmd = [sys.executable, __file__, "attack", "--port", str(port), "--count", str(per)]
            cmd += ["--seconds", str(total), "--interval", str(args.drip_interval)]
            children.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True))
        # the ramp: until the server holds N connections (or --ramp seconds)
        ramp_start = time.monotonic()
        while time.monotonic() - ramp_start < args.ramp:
            if fd_count(server.pid) >= min(args.connections, limit - 300):
                break
            await asyncio.sleep(0.5)
        ramp = time.monotonic() - ramp_start
        cpu0, _ = proc_stats(server.pid)
        held: list[int] = []
        challenge: list[tuple[float, str]] = []
        event: list[tuple[float, str]] = []
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            held.append(fd_count(server.pid))
            results = await asyncio.gather(probe(port, challenge_request()), probe(port, event_request()))
            challenge.append(results[0])
            event.append(results[1])
            await asyncio.sleep(0.5)
        cpu1, rss = proc_stats(server.pid)
        attackers = []
        for child in children[1:]:
            out, _ = child.communicate(timeout=args.seconds + 60)
            attackers.append(json.loads(out or b"{}"))
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
    log_bytes = log_path.stat().st_size
    log_text = log_path.read_text(errors="replace")
    load = os.getloadavg()

    def summary(name: str, rows: list[tuple[float, str]]) -> str:
        times = [t for t, _ in rows]
        ok = [t for t, s in rows if s == "200"]
        late = sum(1 for t, s in rows if s != "200" or t > 2.0)
        return (
            f"{name:<10} {len(rows):>4} probes  200: {len(ok):>4}  median {statistics.median(times) * 1000:7.1f} ms  "
            f"max {max(times) * 1000:7.1f} ms  over 2 s or not 200: {late}  statuses {sorted({s for _, s in rows})}"
        )

    print(
        f"server: {args.server}; drip-fed connections asked: {args.connections} in {workers} workers; "
        f"deadline {args.deadline} s, backlog {args.backlog}, cap {args.max_connections or 'default'}"
    )
    print(f"file limit (soft=hard) {limit}; cpus {os.cpu_count()}; load average at the end {load[0]:.1f} {load[1]:.1f}")
    print(f"ramp {ramp:.1f} s; server fds while probing: median {statistics.median(held):.0f}, max {max(held)}")
    if CONNECT_TIMES:
        print(
            f"probes' connect: median {statistics.median(CONNECT_TIMES) * 1000:.1f} ms, "
            f"max {max(CONNECT_TIMES) * 1000:.1f} ms"
        )
    print(summary("challenge", challenge))
    print(summary("event", event))
    print(f"server log: {log_bytes} bytes, {log_text.count(chr(10))} lines, {log_text.count('Traceback')} tracebacks")
    print(f"server CPU while probing {cpu1 - cpu0:.1f} s over {args.seconds} s; RSS {rss} MiB")
    for i, stats in enumerate(attackers):
        print(f"worker {i}: {stats}")


# ---------------------------------------------------------------- the emission bench
def emission_bench(args: argparse.Namespace) -> None:
    """2,000 events, 50 in flight, into a real local Prefect server: answer times, and when they are stored."""
    from tests.prefect_server_support import private_prefect_server

    work = Path(tempfile.mkdtemp(prefix="webhook-emission-"))
    with private_prefect_server(work / "prefect") as prefect:
        env = prefect.env
        port_file, log_path = work / "port", work / "receiver.log"
        command = [sys.executable, __file__, "serve", "--server", args.server, "--port-file", str(port_file)]
        command += ["--emit", "prefect"]
        with log_path.open("wb") as log:
            receiver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            for _ in range(600):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.1)
            port = int(port_file.read_text())
            owner = ATHLETE
            time.sleep(1.0)  # the receiver's startup (its events client opens) is not the flood's
            cpu0, _ = proc_stats(receiver.pid)
            times, statuses, last_answer = asyncio.run(flood(port, args.events, args.in_flight))
            stored, stored_after = wait_stored(prefect.api, owner, args.events, last_answer)
            cpu1, rss = proc_stats(receiver.pid)
        finally:
            os.killpg(receiver.pid, signal.SIGTERM)
            try:
                receiver.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(receiver.pid, signal.SIGKILL)
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    load = os.getloadavg()
    print(f"emission: {args.events} events, {args.in_flight} in flight, receiver {args.server} + PrefectEmitter")
    print(f"cpus {os.cpu_count()}; load average at the end {load[0]:.1f} {load[1]:.1f}")
    print(
        f"answers: {dict(sorted(statuses.items()))}; median {statistics.median(times) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms"
    )
    print(f"stored in Prefect: {stored} of {args.events} distinct events ({stored_after:.1f} s after the last answer)")
    print(
        f"receiver CPU from the first request to the last event stored: {cpu1 - cpu0:.2f} s "
        f"({(cpu1 - cpu0) / args.events * 1000:.2f} ms an event, answering and emitting); RSS {rss} MiB"
    )
    print(f"receiver log: {log_path.stat().st_size} bytes")


async def flood(port: int, count: int, in_flight: int) -> tuple[list[float], dict[str, int], float]:
    gate = asyncio.Semaphore(in_flight)
    times: list[float] = []
    statuses: dict[str, int] = {}

    async def one(i: int) -> None:
        body = json.dumps(
            {
                "aspect_type": "create",
                "event_time": 1_793_000_000 + i,
                "object_id": 8_000_000_000 + i,
                "object_type": "activity",
                "owner_id": ATHLETE,
                "subscription_id": SUBSCRIPTION,
                "updates": {},
            }
        ).encode()
        head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        async with gate:
            took, status = await probe(port, head + body, timeout=10.0)
        times.append(took)
        statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one(i) for i in range(count)))
    return times, statuses, time.monotonic()


def wait_stored(api: str, owner: int, expected: int, last_answer: float) -> tuple[int, float]:
    """Poll the Prefect API until ``expected`` distinct events of ``owner`` are stored (60 s at most)."""
    import httpx

    query = {
        "filter": {
            "occurred": {"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
            "resource": {"id": [f"strava.athlete.{owner}"]},
            "order": "ASC",
        },
        "limit": 50,
    }
    seen: set[str] = set()
    count = 0
    with httpx.Client(base_url=api, timeout=30) as http:
        while time.monotonic() - last_answer < 60:
            page = http.post("/events/filter", json=query).json()
            count = int(page.get("total", 0))
            if count >= expected:
                break
            time.sleep(0.2)
        after = time.monotonic() - last_answer
        page = http.post("/events/filter", json=query).json()  # every id, to count distinct ones
        seen.update(e["id"] for e in page.get("events", []))
        while page.get("next_page"):
            page = http.get(page["next_page"]).json()
            seen.update(e["id"] for e in page.get("events", []))
    return (len(seen) if len(seen) == count else count), after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode")
    s = sub.add_parser("serve")
    s.add_argument("--server", default="front")
    s.add_argument("--port-file", required=True)
    s.add_argument("--deadline", type=float, default=5.0)
    s.add_argument("--max-connections", type=int, default=None)
    s.add_argument("--backlog", type=int, default=4096)
    s.add_argument("--emit", choices=["null", "prefect"], default="null")
    a = sub.add_parser("attack")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--count", type=int, required=True)
    a.add_argument("--seconds", type=float, required=True)
    a.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=30.0)
    parser.add_argument("--drip-interval", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=5.0)
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument("--server", choices=["front", "uvicorn"], default="front")
    parser.add_argument(
        "--emission", action="store_true", help="the emission bench: --events POSTs, --in-flight at once, real Prefect"
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=50)
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.server, args.port_file, args.deadline, args.max_connections, args.backlog, args.emit)
    elif args.mode == "attack":
        raise_nofile()
        os.nice(15)  # on one machine the attackers must not take the server's CPU (real ones have their own)
        print(json.dumps(asyncio.run(attack(args.port, args.count, args.seconds, args.interval))))
    elif args.emission:
        emission_bench(args)
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
