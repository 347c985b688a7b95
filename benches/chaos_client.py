#!/usr/bin/env python3
"""Hostile and normal clients for benches/chaos.sh (standard library only).

Each subcommand prints `name: value` lines that chaos.sh collects.
"""

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def one_request(host, port, path, headers="", timeout=10.0):
    """One HTTP/1.1 request on a new connection; returns (status, seconds)."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
        writer.close()
        status = int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else 0
    except (OSError, asyncio.TimeoutError, ValueError):
        status = 0
    return status, time.monotonic() - started


async def normal_latency(host, port, path, count):
    """`count` sequential requests; returns (p50 ms, p99 ms, failures)."""
    times, failures = [], 0
    for _ in range(count):
        status, seconds = await one_request(host, port, path)
        if status != 200:
            failures += 1
        times.append(seconds * 1000)
    return percentile(times, 0.5), percentile(times, 0.99), failures


async def hostile_idle(host, port, count):
    """Opens `count` connections that send nothing, `P`, or a stalled HTTP/2 preface."""
    kinds = [b"", b"P", b"PRI * HTTP/2.0\r\n"]
    writers = []

    async def open_one(index):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 20)
            payload = kinds[index % len(kinds)]
            if payload:
                writer.write(payload)
            writers.append(writer)
        except (OSError, asyncio.TimeoutError):
            pass

    batch = 500
    for start in range(0, count, batch):
        await asyncio.gather(*(open_one(i) for i in range(start, min(count, start + batch))))
    return writers


async def cmd_idle(host, port, path, count):
    writers = await hostile_idle(host, port, count)
    print(f"hostile_connections_opened: {len(writers)}")
    p50, p99, failures = await normal_latency(host, port, path, 200)
    print(f"idle_{count}_p50_ms: {p50:.1f}")
    print(f"idle_{count}_p99_ms: {p99:.1f}")
    print(f"idle_{count}_failures: {failures}/200")
    for writer in writers:
        writer.close()


async def cmd_slowloris(host, port, path, count):
    stop = asyncio.Event()

    async def drip(index):
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                await asyncio.sleep(1 + random.random())
                writer.write(f"X-{index}: {random.random()}\r\n".encode())
                await writer.drain()
                if reader.at_eof():
                    # Cut off: come back, as an attacker would.
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass

    tasks = [asyncio.create_task(drip(i)) for i in range(count)]
    await asyncio.sleep(3)
    p50, p99, failures = await normal_latency(host, port, path, 200)
    print(f"slowloris_{count}_p50_ms: {p50:.1f}")
    print(f"slowloris_{count}_p99_ms: {p99:.1f}")
    print(f"slowloris_{count}_failures: {failures}/200")
    stop.set()
    for task in tasks:
        task.cancel()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def cmd_uploads(host, port, endpoint, secret, pid, count):
    print(f"rss_baseline_mib: {rss_mib(pid):.1f}")
    body_len, sent = 1_000_000, 900_000
    head = (
        f"POST /endpoint/{endpoint}/pages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    ).encode()
    chunk = b" " * sent
    writers, answers = [], {}

    async def upload(index):
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(head + chunk)
            await writer.drain()
            writers.append(writer)
            try:
                data = await asyncio.wait_for(reader.read(64), 0.5)
                status = data[9:12].decode() if data else "closed"
            except asyncio.TimeoutError:
                status = "stalled"
            answers[status] = answers.get(status, 0) + 1
        except OSError:
            answers["error"] = answers.get("error", 0) + 1

    await asyncio.gather(*(upload(i) for i in range(count)))
    await asyncio.sleep(1)
    print(f"uploads_{count}_answers: {answers}")
    print(f"rss_with_{count}_stalled_uploads_mib: {rss_mib(pid):.1f}")
    for writer in writers:
        writer.close()
    await asyncio.sleep(3)
    print(f"rss_after_uploads_closed_mib: {rss_mib(pid):.1f}")


async def cmd_load(host, port, path, headers, seconds, concurrency):
    """Reads for `seconds`; prints the outcome counts."""
    outcomes = {}
    deadline = time.monotonic() + seconds

    async def worker():
        while time.monotonic() < deadline:
            status, _ = await one_request(host, port, path, headers, timeout=40)
            outcomes[status] = outcomes.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def cmd_churn(host, port, path, secret, config_dir, seconds):
    stop = time.monotonic() + seconds
    endpoint_file = os.path.join(config_dir, "conflagent.bench.properties")
    content = "".join(
        line for line in open(endpoint_file).read().splitlines(keepends=True)
        if not line.startswith("description")
    )
    changes = 0

    async def churn():
        nonlocal changes
        while time.monotonic() < stop:
            for index in range(20):
                name = os.path.join(config_dir, f"conflagent.other{index}.properties")
                with open(name + ".tmp", "w") as other:
                    other.write(content + f"description=churn {changes}\n")
                os.replace(name + ".tmp", name)
            # The served file too, by rename, with unchanged content.
            with open(endpoint_file + ".tmp", "w") as same:
                same.write(content)
            os.replace(endpoint_file + ".tmp", endpoint_file)
            changes += 1
            await asyncio.sleep(0.05 + 0.05 * random.random())

    churner = asyncio.create_task(churn())
    outcomes = await cmd_load(host, port, path, f"Authorization: Bearer {secret}\r\n", seconds, 8)
    await churner
    print(f"churn_rounds: {changes}")
    print(f"churn_read_outcomes: {dict(sorted(outcomes.items()))}")


class FaultProxy:
    """A TCP proxy in front of the simulator: fails a share of requests with 503, and can be
    stopped and started to imitate a Confluence restart."""

    def __init__(self, upstream_port, failure_rate):
        self.upstream_port = upstream_port
        self.failure_rate = failure_rate
        self.server = None
        self.port = None

    async def handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length) if length else b""
            if random.random() < self.failure_rate:
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
                up_writer.write(head + body)
                await up_writer.drain()
                writer.write(await up_reader.read())
                up_writer.close()
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port or 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


async def cmd_faults(host, port, endpoint, secret, sim_port, config_dir, path):
    proxy = FaultProxy(sim_port, 0.2)
    await proxy.start()
    endpoint_file = os.path.join(config_dir, f"conflagent.{endpoint}.properties")
    lines = [line for line in open(endpoint_file).read().splitlines() if not line.startswith("base_url")]
    faulty = os.path.join(config_dir, "conflagent.faulty.properties")
    with open(faulty + ".tmp", "w") as out:
        out.write("\n".join(lines + [f"base_url=http://127.0.0.1:{proxy.port}", "upstream_timeout_seconds=10"]) + "\n")
    os.replace(faulty + ".tmp", faulty)
    await asyncio.sleep(1.5)
    headers = f"Authorization: Bearer {secret}\r\n"
    read_path = path.replace(f"/endpoint/{endpoint}/", "/endpoint/faulty/")
    outcomes = await cmd_load(host, port, read_path, headers, 10, 8)
    print(f"faults_20pct_503_read_outcomes: {dict(sorted(outcomes.items()))}")
    # A restart: the upstream refuses connections for 3 s, then comes back.
    proxy.failure_rate = 0.0

    async def restart():
        await asyncio.sleep(1)
        await proxy.stop()
        await asyncio.sleep(3)
        await proxy.start()

    restarter = asyncio.create_task(restart())
    outcomes = await cmd_load(host, port, read_path, headers, 8, 8)
    await restarter
    print(f"faults_restart_3s_read_outcomes: {dict(sorted(outcomes.items()))}")
    os.remove(faulty)


async def cmd_shutdown(binary, config_dir, grace):
    public, private = 18180, 19564
    process = subprocess.Popen(
        [binary, "serve", "--config-dir", config_dir, "--listen", f"127.0.0.1:{public}",
         "--metrics-listen", f"127.0.0.1:{private}", "--shutdown-grace", str(grace),
         "--drain-delay", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, RUST_LOG="warn"),
    )
    for _ in range(100):
        status, _ = await one_request("127.0.0.1", public, "/health", timeout=1)
        if status == 200:
            break
        await asyncio.sleep(0.1)
    stuck = []
    for port in (public, private):
        for _ in range(5):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            stuck.append(writer)
    # Accepted in order: once a later request is answered, the stuck ones are held.
    await one_request("127.0.0.1", public, "/health")
    await one_request("127.0.0.1", private, "/healthz")
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    while process.poll() is None:
        await asyncio.sleep(0.01)
    print(f"shutdown_with_stuck_clients_on_both_listeners_s: {time.monotonic() - started:.2f} (grace {grace} s)")
    for writer in stuck:
        writer.close()


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "idle":
        asyncio.run(cmd_idle(args[0], int(args[1]), args[2], int(args[3])))
    elif command == "slowloris":
        asyncio.run(cmd_slowloris(args[0], int(args[1]), args[2], int(args[3])))
    elif command == "uploads":
        asyncio.run(cmd_uploads(args[0], int(args[1]), args[2], args[3], int(args[4]), int(args[5])))
    elif command == "churn":
        asyncio.run(cmd_churn(args[0], int(args[1]), args[2], args[3], args[4], int(args[5])))
    elif command == "faults":
        asyncio.run(cmd_faults(args[0], int(args[1]), args[2], args[3], int(args[4]), args[5], args[6]))
    elif command == "shutdown":
        asyncio.run(cmd_shutdown(args[0], args[1], int(args[2])))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
