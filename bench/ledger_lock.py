"""How long queued ledger writers wait after the holder of their lock stripe lets go.

Every ledger write holds one of 16 Prefect global concurrency limits (limit 1, leased).
This measures, on a real Prefect server (`prefect server start`, SQLite, in a temporary
PREFECT_HOME; the test harness's ephemeral server runs no lease revocation), the
handoff: K waiters queue behind a holder, the holder lets go, and we time how long until
every waiter has had the slot (each holds it 0.1 s, like a ledger write).

Two ways of waiting, run side by side in each round on two fresh limits:

* Prefect retry (baseline) - ``concurrency(limit, timeout_seconds=...)``: on a 423 it
  sleeps the server's Retry-After, which grows with the limit's average occupancy and its
  denied tries (capped at 30 s, plus up to 30 % jitter);
* hold_limit (ours)        - ``prefect_stacks.environments.hold_limit``: one try per
  request, polled with a 0.05 s -> 1 s capped backoff.

Scenarios:

* release - the holder keeps the slot ``--hold`` seconds (default 20), then releases it;
  the clock starts at the release.
* kill    - the holder is a separate process, SIGKILLed while holding; its lease (60 s,
  the server minimum) expires and the server's revocation loop (every 15 s) frees the
  slot. The clock starts at the kill. About 75-90 s a round.

Prints, per scenario and way, the median over rounds of: the first waiter's lag, the
last waiter's lag, and the ratio of the last lag to the baseline's.

Run: ``python bench/ledger_lock.py [--rounds 3] [--waiters 4] [--scenarios release,kill]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

HOLD_BODY_SECONDS = 0.1
WAIT_LIMIT_SECONDS = 600

HOLDER = """
import sys, time
from prefect.concurrency.sync import concurrency
with concurrency(sys.argv[1], occupy=1, lease_duration=60, strict=True):
    print("held", flush=True)
    time.sleep(3600)
"""


def _create_limit(name: str) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=1, active=True)
        )


def _prefect_retry(limit: str):
    from prefect.concurrency.sync import concurrency

    return concurrency(
        limit, occupy=1, timeout_seconds=WAIT_LIMIT_SECONDS, lease_duration=60, strict=True
    )


def _ours(limit: str):
    from prefect_stacks.environments import hold_limit

    return hold_limit(limit, WAIT_LIMIT_SECONDS)


WAYS = {"Prefect retry (baseline)": _prefect_retry, "hold_limit (ours)": _ours}


def _start_waiters(way, limit: str, k: int, done: list[float], errors: list[BaseException]):
    def waiter() -> None:
        try:
            with way(limit):
                time.sleep(HOLD_BODY_SECONDS)
                done.append(time.monotonic())
        except BaseException as exc:  # reported, never swallowed
            errors.append(exc)

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(k)]
    for thread in threads:
        thread.start()
    return threads


def one_round(scenario: str, waiters: int, hold: float) -> dict[str, tuple[float, float]]:
    """Both ways at once, each on its own fresh limit; returns way -> (first, last) lag."""
    limits = {way: f"bench-ledger-{uuid.uuid4().hex[:10]}" for way in WAYS}
    for limit in limits.values():
        _create_limit(limit)

    holders: dict[str, object] = {}
    if scenario == "kill":
        env = dict(os.environ)
        for way, limit in limits.items():
            proc = subprocess.Popen(
                [sys.executable, "-c", HOLDER, limit], stdout=subprocess.PIPE, text=True, env=env
            )
            if proc.stdout.readline().strip() != "held":
                raise RuntimeError("the holder process did not take the slot")
            holders[way] = proc
    else:
        from prefect.concurrency.sync import concurrency

        for way, limit in limits.items():
            cm = concurrency(limit, occupy=1, lease_duration=60, strict=True)
            cm.__enter__()
            holders[way] = cm

    done: dict[str, list[float]] = {way: [] for way in WAYS}
    errors: list[BaseException] = []
    threads = []
    for way, limit in limits.items():
        threads += _start_waiters(WAYS[way], limit, waiters, done[way], errors)
    # let every waiter be refused a few times (that is what inflates Retry-After)
    time.sleep(hold if scenario == "release" else 3.0)

    start = time.monotonic()
    for holder in holders.values():
        if scenario == "kill":
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        else:
            holder.__exit__(None, None, None)
    for thread in threads:
        thread.join(WAIT_LIMIT_SECONDS)
    if errors:
        raise RuntimeError(f"a waiter failed: {errors[0]!r}") from errors[0]
    result = {}
    for way, stamps in done.items():
        if len(stamps) != waiters:
            raise RuntimeError(f"{way}: {len(stamps)} of {waiters} waiters got the slot")
        stamps.sort()
        result[way] = (stamps[0] - start, stamps[-1] - start)
    return result


@contextlib.contextmanager
def prefect_server():
    import httpx

    home = tempfile.mkdtemp(prefix="bench-ledger-lock-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-ui",
        ],
        env={**os.environ, "PREFECT_HOME": home, "PREFECT_API_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the Prefect server did not start")
            time.sleep(0.5)
        # before prefect is imported: its settings are read once, and every thread
        # (the waiters) must see them
        os.environ["PREFECT_API_URL"] = url
        yield
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--waiters", type=int, default=4)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--scenarios", default="release,kill")
    args = parser.parse_args()

    rows = []
    with prefect_server():
        for scenario in args.scenarios.split(","):
            lags: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
            for n in range(args.rounds):
                got = one_round(scenario, args.waiters, args.hold)
                for way, lag in got.items():
                    lags[way].append(lag)
                print(
                    f"  {scenario} round {n + 1}/{args.rounds}: "
                    + ", ".join(f"{w.split()[0]} last {v[1]:.2f}s" for w, v in got.items()),
                    file=sys.stderr,
                    flush=True,
                )
            base = statistics.median(last for _, last in lags["Prefect retry (baseline)"])
            for way, values in lags.items():
                first = statistics.median(v[0] for v in values)
                last = statistics.median(v[1] for v in values)
                rows.append((scenario, way, first, last, last / base))

    print(
        f"\n{args.waiters} waiters per limit, median of {args.rounds} rounds, "
        f"each waiter holds {HOLD_BODY_SECONDS}s\n"
    )
    print("| scenario | way | first waiter in (s) | last waiter done (s) | last vs baseline |")
    print("|---|---|---|---|---|")
    for scenario, way, first, last, ratio in rows:
        print(f"| {scenario} | {way} | {first:.2f} | {last:.2f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
