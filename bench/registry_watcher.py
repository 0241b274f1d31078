"""What watching 500 tag policies costs a real registry, and how long push -> pods Ready takes.

Part 1 (cost of an idle cycle). A real Distribution registry (Debian's `docker-registry`,
``tests/conftest.py::start_registry``) holds 20 repositories of 25 tags each, pushed
through the registry API (``tests/oci.py``; every tag its own manifest). 500 tag policies
watch them: per repository 22 ``MutableTag`` (7 named tags, 10 versions, 5 builds), one
``SemverPolicy`` (``^1``), one ``RegexPolicy`` (the highest ``main-<build>-<sha7>``) and
one more: ``NewestBuildPolicy`` (``^main-``, 8 candidates) in 4 repositories,
``SemverPolicy`` (``>=2``) in the others. Variants, interleaved, median of ``--cycles``
cycles after one warm-up cycle, nothing pushed in between:

* naive watcher (baseline) - per repository, list the tags, then ``GET`` the manifest of
  each watched tag (for newest-build, the manifest and config of every candidate); no
  conditional requests, as Argo CD Image Updater does;
* prefect-stacks           - ``resolve_images`` (the registry-watcher's poll) with the
  watcher's state from the previous cycle: a conditional ``HEAD`` per mutable tag, seeded
  with the digest seen last (``304``), and a tag list per semver/regex/newest policy;
* prefect-stacks, no state - the same with an empty state (a watcher's first run).

Requests and bytes are counted on the wire by a hook on httpx's transport, in this
script only (request line, headers and body each way, as HTTP/1.1 sends them; chunked
framing not counted). The block's request pacing is switched off for the timing (it
would make every variant ``requests / requests_per_second`` long); the column "at
10 req/s" gives that time at Image Updater's default rate.

Part 2 (push -> new pods Ready, median of ``--tries``). The test bed's Kubernetes
control plane (kwok nodes, ``tests/testbed``), a temporary Prefect server
(``prefect_test_harness``), the receiver (``prefect-stacks webhooks serve``) and a
second registry whose notifications go to it. Two targets (a Deployment of 2 replicas
each, its own namespace and repository), each try a new image pushed as ``latest``:

* notification - the registry's notification -> the receiver (202, from its log) ->
  ``stacks.image.updated`` seen on Prefect's event stream -> ``kubernetes_deploy``
  (kubectl method) run by this script at once, not through an automation and a worker
  (those add ~0.1 s and ~2.6 s here, see bench/event_latency.py);
* polling      - ``resolve_images`` every ``--poll-interval`` seconds (5 s; real pollers
  wait minutes: Image Updater 2 min, Flux and Keel minutes) -> the same deploy when the
  digest moved. Expected detect time: about half the interval.

The clock starts when the manifest PUT is sent; "push -> Ready" stops when the deploy's
``kubectl rollout status`` returns (the new pods Ready; a hook in this script), "flow
finished" when ``kubernetes_deploy`` returns (its record written, its events sent).

Run as root (the test bed's binaries, ``make testbed``): ``python bench/registry_watcher.py
[--cycles 5] [--tries 5] [--poll-interval 5] [--part both|1|2]``. About 2.5 minutes.
Everything it starts is stopped at the end, on Ctrl-C and on SIGTERM too.

Longer than 400 lines because it is two benchmarks with their own services and tables,
which the issue asks for in one script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import logging
import os
import queue
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPOSITORIES, NEWEST_BUILD_REPOSITORIES = 20, 4
NAMED = ["latest", "main", "staging", "prod", "dev", "edge", "stable"]
VERSIONS = ["1.0.0", "1.0.1", "1.1.0", "1.1.1", "1.2.0", "1.2.1", "2.0.0", "2.0.1", "2.1.0"]
VERSIONS += ["2.2.0-rc.1"]
BUILDS = [f"main-{101 + i}-{i:07x}" for i in range(8)]
ANCHOR_CALLS, ANCHOR_TAGS, ANCHOR_RATE = 5000, 700, 10.0


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the wire
class Wire:
    """Requests, bytes and statuses to one ``host:port``, by label (what is resolving)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.label = "-"
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def reset(self) -> None:
        self.counts.clear()

    def add(self, label: str, what: str, n: int) -> None:
        with self._lock:
            self.counts[(label, what)] += n

    def install(self) -> None:
        import httpx

        original = httpx.HTTPTransport.handle_request
        wire = self

        class Counted(httpx.SyncByteStream):
            def __init__(self, inner: Any, label: str) -> None:
                self.inner, self.label = inner, label

            def __iter__(self):
                for chunk in self.inner:
                    wire.add(self.label, "bytes", len(chunk))
                    yield chunk

            def close(self) -> None:
                self.inner.close()

        def head(headers: Any) -> int:
            return sum(len(k) + len(v) + 4 for k, v in headers.raw) + 2

        def handle_request(transport: Any, request: httpx.Request) -> httpx.Response:
            response = original(transport, request)
            if request.url.netloc.decode() != wire.address:
                return response
            label = wire.label
            target = request.url.raw_path
            sent = len(f"{request.method} ") + len(target) + len(" HTTP/1.1\r\n")
            sent += head(request.headers) + len(request.content)
            got = len(f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n")
            wire.add(label, "requests", 1)
            wire.add(label, "bytes", sent + got + head(response.headers))
            wire.add(label, f"status {response.status_code}", 1)
            response.stream = Counted(response.stream, label)
            return response

        httpx.HTTPTransport.handle_request = handle_request


def quiet_watcher() -> None:
    """``resolve_images`` outside a flow run: a plain logger, no pacing, and each
    policy's requests labelled with its kind (this script only)."""
    from prefect_stacks.blocks.registry import client as registry_client
    from prefect_stacks.flows import watchers

    watchers.get_run_logger = lambda: logging.getLogger("bench")
    registry_client._Pacer.wait = classmethod(lambda cls, key, interval: None)
    original = watchers.resolve

    def labelled(client, repository, policy):
        WIRE.label = policy.kind
        return original(client, repository, policy)

    watchers.resolve = labelled


WIRE = Wire("")


# --------------------------------------------------------------------------- part 1
def push_repository(pusher: Any, repository: str, hour: int) -> None:
    """25 tags, each its own manifest (an OCI manifest naming its tag): one layer, one
    config for the named tags and versions, and one per build (each built an hour later)."""
    from tests.oci import CONFIG_TYPE, LAYER_TYPE, OCI_MANIFEST

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def config(hours: int) -> dict:
        created = (start + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"architecture": "amd64", "os": "linux", "created": created}
        body["rootfs"] = {"type": "layers", "diff_ids": [f"sha256:{hours:064x}"]}
        return pusher.blob(repository, json.dumps(body).encode())

    layer, shared = pusher.blob(repository, os.urandom(64)), config(hour)
    for i, tag in enumerate(NAMED + VERSIONS + BUILDS):
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": CONFIG_TYPE[OCI_MANIFEST],
                **(config(hour + i) if tag in BUILDS else shared),
            },
            "layers": [{"mediaType": LAYER_TYPE[OCI_MANIFEST], **layer}],
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
        pusher.manifest(repository, tag, manifest, OCI_MANIFEST)


def seed(address: str) -> list[Any]:
    """Push 20 repositories x 25 tags (4 threads); the 500 policies watching them."""
    from concurrent.futures import ThreadPoolExecutor

    from prefect_stacks.blocks.registry import (
        MutableTag,
        NewestBuildPolicy,
        RegexPolicy,
        SemverPolicy,
    )
    from prefect_stacks.flows.watchers import WatchedImage
    from tests.oci import Pusher

    pusher, pool = Pusher(address), ThreadPoolExecutor(4)
    try:
        names = [f"bench/app-{r:02d}" for r in range(REPOSITORIES)]
        list(pool.map(lambda r: push_repository(pusher, names[r], r * 100), range(REPOSITORIES)))
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C: not the pushes still queued
    images = []
    for r in range(REPOSITORIES):
        repository = f"bench/app-{r:02d}"
        policies: list[Any] = [MutableTag(tag=t) for t in NAMED + VERSIONS + BUILDS[:5]]
        policies.append(SemverPolicy(constraint="^1"))
        policies.append(RegexPolicy(pattern=r"^main-(?P<build>\d+)-", sort_by="build"))
        if r < NEWEST_BUILD_REPOSITORIES:
            policies.append(NewestBuildPolicy(pattern="^main-"))
        else:
            policies.append(SemverPolicy(constraint=">=2"))
        images += [WatchedImage(repository=repository, policy=p) for p in policies]
    return images


def naive_cycle(base: str, images: list[Any]) -> dict[str, str]:
    """List each repository's tags, GET each watched tag's manifest; nothing conditional."""
    import httpx

    from prefect_stacks._internal.semver import Constraint, Version, newest
    from prefect_stacks.blocks.registry import MANIFEST_TYPES

    by_repository: dict[str, list[Any]] = {}
    for image in images:
        by_repository.setdefault(image.repository, []).append(image)
    observed: dict[str, str] = {}
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:

        def manifest(repository: str, reference: str) -> tuple[str, dict]:
            answer = client.get(f"/v2/{repository}/manifests/{reference}")
            answer.raise_for_status()
            return answer.headers["docker-content-digest"], answer.json()

        for repository, watched in by_repository.items():
            WIRE.label = "tag lists"
            answer = client.get(f"/v2/{repository}/tags/list", params={"n": 1000})
            tags = answer.raise_for_status().json()["tags"]
            for image in watched:
                policy, WIRE.label = image.policy, image.policy.kind
                if policy.kind == "tag":
                    tag = policy.tag
                elif policy.kind == "semver":
                    versions = {t: v for t in tags if (v := Version.parse(t))}
                    tag = newest(versions, Constraint.parse(policy.constraint), False)
                elif policy.kind == "regex":
                    tag = max((key, t) for t in tags if (key := policy.key(t)))[1]
                else:  # newest-build: every candidate's manifest and config
                    built = []
                    for t in [t for t in tags if re.search(policy.pattern, t)]:
                        digest, body = manifest(repository, t)
                        config = client.get(f"/v2/{repository}/blobs/{body['config']['digest']}")
                        built.append((config.raise_for_status().json()["created"], t, digest))
                    _, tag, digest = max(built)
                    observed[image.key] = f"{tag}@{digest}"
                    continue
                observed[image.key] = f"{tag}@{manifest(repository, tag)[0]}"
    return observed


def part1(cycles: int) -> None:
    from prefect_stacks.blocks.registry import ContainerRegistry
    from prefect_stacks.flows.watchers import resolve_images
    from tests.conftest import start_registry, stop

    base = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    proc, address, _ = start_registry(base)
    try:
        started = time.perf_counter()
        images = seed(address)
        say(f"pushed {REPOSITORIES * 25} tags in {time.perf_counter() - started:.0f} s")
        WIRE.address = address
        block = ContainerRegistry(url=f"http://{address}", requests_per_second=100)
        state = resolve_images.fn(block, images, {})[0]  # the first run: the baseline
        assert len(state) == len(images), "a policy resolved to nothing"
        assert naive_cycle(block.url, images) == state, "naive and ours disagree"

        def ours() -> None:
            observed, failed = resolve_images.fn(block, images, state)
            assert observed == state and not failed

        def unseeded() -> None:
            assert resolve_images.fn(block, images, {})[0] == state

        variants = {
            "naive watcher (baseline)": lambda: naive_cycle(block.url, images),
            "prefect-stacks": ours,
            "prefect-stacks, no state": unseeded,
        }
        rows: dict[str, list[tuple[Counter, float]]] = {name: [] for name in variants}
        for cycle in range(cycles):
            for name, run in variants.items():
                WIRE.reset()
                started = time.perf_counter()
                run()
                rows[name].append((Counter(WIRE.counts), time.perf_counter() - started))
            say(f"cycle {cycle + 1}/{cycles}")
    finally:
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)
    print_part1(rows, cycles, len(images))


def print_part1(rows: dict[str, list[tuple[Counter, float]]], cycles: int, policies: int) -> None:
    def med(values: list[tuple[Counter, float]], what: str, label: str | None = None) -> float:
        return statistics.median(
            sum(n for (lab, w), n in c.items() if w == what and label in (None, lab))
            for c, _ in values
        )

    base = rows["naive watcher (baseline)"]
    b_req, b_bytes = med(base, "requests"), med(base, "bytes")
    b_ms = statistics.median(s for _, s in base) * 1000
    print(f"\nTable 1. One idle cycle, {policies} tag policies over {REPOSITORIES} repositories")
    print(f"(real Distribution 2.8), median of {cycles} cycles, nothing pushed in between\n")
    print(
        "| watcher | requests | of which 304 | bytes (KiB) | ms (no pacing) | s at 10 req/s "
        "| requests ratio | bytes ratio | time ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        req, got304 = med(values, "requests"), med(values, "status 304")
        size, ms = med(values, "bytes"), statistics.median(s for _, s in values) * 1000
        print(
            f"| {name} | {req:.0f} | {got304:.0f} | {size / 1024:.0f} | {ms:.0f} "
            f"| {req / ANCHOR_RATE:.0f} | {req / b_req:.2f} | {size / b_bytes:.2f} "
            f"| {ms / b_ms:.2f} |"
        )
    ours = rows["prefect-stacks"]
    print("\nTable 1b. The same idle cycle by policy kind (median requests / bytes per cycle)\n")
    print("| policy kind | policies | naive requests | naive KiB | ours requests | ours KiB |")
    print("|---|---|---|---|---|---|")
    kinds = {
        "tag": policies - 3 * REPOSITORIES,
        "semver": 2 * REPOSITORIES - NEWEST_BUILD_REPOSITORIES,
        "regex": REPOSITORIES,
        "newest-build": NEWEST_BUILD_REPOSITORIES,
        "tag lists": REPOSITORIES,
    }
    for kind, count in kinds.items():
        print(
            f"| {kind}{' (naive: one per repository)' if kind == 'tag lists' else ''} "
            f"| {count if kind != 'tag lists' else '-'} "
            f"| {med(base, 'requests', kind):.0f} | {med(base, 'bytes', kind) / 1024:.1f} "
            f"| {med(ours, 'requests', kind):.0f} | {med(ours, 'bytes', kind) / 1024:.1f} |"
        )
    req = med(ours, "requests")
    scaled = ANCHOR_CALLS * policies / ANCHOR_TAGS
    print(
        f"\nAnchor: Image Updater was reported at ~{ANCHOR_CALLS:,} registry calls per cycle "
        f"for ~{ANCHOR_TAGS} tags ({ANCHOR_CALLS / ANCHOR_TAGS:.1f} per tag; "
        f"{scaled:,.0f} for {policies}), polling every 2 min at up to 10 req/s. Here: naive "
        f"{b_req / policies:.2f} per policy, prefect-stacks {req / policies:.2f} per policy "
        f"({req:.0f} calls, {req / scaled:.2f} of the anchor scaled to {policies}); at "
        f"10 req/s a cycle takes {req / ANCHOR_RATE:.0f} s, at the block's default 5 req/s "
        f"{req / 5:.0f} s."
    )


# --------------------------------------------------------------------------- part 2
MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: REPOSITORY:latest
"""
ACCEPTED = re.compile(r"^(\S+ \S+) INFO POST /hooks/\S+ 202 .*events=stacks\.image\.updated")


def start_cluster(stack: contextlib.ExitStack) -> tuple[Path, str]:
    from tests import testbed
    from tests.testbed.cluster import KwokCluster

    for component in ("kubernetes", "etcd", "kwok"):
        if testbed.unavailable(component):
            raise SystemExit(testbed.unavailable(component))
    bins = {
        name: testbed.binary("kubernetes", name)
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
    }
    bins["etcd"] = testbed.binary("etcd")
    bins["kwokctl"] = testbed.binary("kwok", "kwokctl")
    bins["kwok"] = testbed.binary("kwok", "kwok")
    cluster = KwokCluster(Path(tempfile.mkdtemp(prefix="bench-k8s-")), bins, testbed.kube_version())
    stack.callback(cluster.stop)
    return cluster.start(), str(bins["kubectl"])


def start_receiver(stack: contextlib.ExitStack, root: Path, api_url: str) -> tuple[int, Path]:
    import subprocess

    import httpx

    from tests.conftest import free_port, stop

    port, log = free_port(), root / "receiver.log"
    script = Path(sys.executable).parent / "prefect-stacks"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(script), "webhooks", "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PREFECT_API_URL": api_url},
        )
    stack.callback(stop, proc)
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return port, log
        time.sleep(0.2)
    raise SystemExit(f"the receiver did not start; see {log}")


def accepted_at(log: Path, after: float) -> float | None:
    """When the receiver logged its first 202 for a ``stacks.image.updated`` after ``after``."""
    for line in log.read_text(errors="replace").splitlines():
        if match := ACCEPTED.match(line):
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= after - 0.002:  # the log has millisecond stamps
                return at
    return None


def subscribe(stack: contextlib.ExitStack) -> queue.Queue:
    """(seen at, digest) of every ``stacks.image.updated`` on Prefect's event stream."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    seen: queue.Queue = queue.Queue()
    loop = asyncio.new_event_loop()
    connected = threading.Event()

    async def listen() -> None:
        flt = EventFilter(event=EventNameFilter(name=["stacks.image.updated"]))
        async with get_events_subscriber(filter=flt) as subscriber:
            connected.set()
            async for event in subscriber:
                seen.put((time.time(), event.payload.get("digest")))

    task: list[asyncio.Task] = []

    def run() -> None:
        task.append(loop.create_task(listen()))
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task[0])

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    stack.callback(thread.join, 10)
    stack.callback(lambda: task and loop.call_soon_threadsafe(task[0].cancel))
    if not connected.wait(30):
        raise SystemExit("could not subscribe to the Prefect server's events")
    return seen


def poller(stack: contextlib.ExitStack, block: Any, image: Any, interval: float) -> queue.Queue:
    """``resolve_images`` every ``interval`` s on a fixed cadence: (seen at, digest) when
    the digest moved."""
    from prefect_stacks.flows.watchers import resolve_images

    moved: queue.Queue = queue.Queue()
    done = threading.Event()

    def loop() -> None:
        seen: dict[str, str] = {}
        tick = time.monotonic()
        while not done.is_set():
            observed, _ = resolve_images.fn(block, [image], seen)
            if seen and observed != seen:
                moved.put((time.time(), observed[image.key].split("@")[1]))
            seen = observed or seen
            tick += interval
            done.wait(max(0.0, tick - time.monotonic()))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(loop,), daemon=True)
    thread.start()
    stack.callback(thread.join, 30)
    stack.callback(done.set)
    return moved


def wait_digest(found: queue.Queue, digest: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while True:
        at, got = found.get(timeout=max(0.1, deadline - time.monotonic()))
        if got == digest:
            return at


def push_latest(pusher: Any, repository: str) -> tuple[str, float]:
    """A new image as ``latest``: its digest, and when its manifest PUT was sent."""
    from tests.oci import CONFIG_TYPE, DOCKER_MANIFEST, LAYER_TYPE

    config = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z"}
    config["rootfs"] = {"type": "layers", "diff_ids": [f"sha256:{os.urandom(32).hex()}"]}
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": CONFIG_TYPE[DOCKER_MANIFEST],
            **pusher.blob(repository, json.dumps(config).encode()),
        },
        "layers": [
            {"mediaType": LAYER_TYPE[DOCKER_MANIFEST], **pusher.blob(repository, os.urandom(64))}
        ],
    }
    sent = time.time()
    return pusher.manifest(repository, "latest", body, DOCKER_MANIFEST), sent


def rollouts_done() -> list[float]:
    """When each ``kubectl rollout status`` of a deploy returned (the new pods Ready)."""
    from prefect_stacks.blocks.kubernetes import Kubectl

    done: list[float] = []
    original = Kubectl.rollout

    def rollout(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        done.append(time.time())

    Kubectl.rollout = rollout
    return done


def part2(tries: int, interval: float) -> None:
    import secrets

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness
    from pydantic import SecretStr

    from prefect_stacks.blocks.kubernetes import KubernetesCluster
    from prefect_stacks.blocks.registry import ContainerRegistry, MutableTag
    from prefect_stacks.blocks.webhooks import WebhookSource
    from prefect_stacks.flows.kubernetes import kubernetes_deploy
    from prefect_stacks.flows.watchers import WatchedImage
    from tests.conftest import start_registry, stop
    from tests.oci import Pusher

    root = Path(tempfile.mkdtemp(prefix="bench-push-"))
    rows: dict[str, list[dict[str, float]]] = {"notification": [], "polling": []}
    ready = rollouts_done()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        say("starting the Kubernetes control plane and a Prefect server ...")
        kubeconfig, kubectl = start_cluster(stack)
        stack.enter_context(prefect_test_harness(server_startup_timeout=120))
        token, source = secrets.token_hex(16), "bench-registry"
        WebhookSource(kind="registry", secret=SecretStr(token)).save(source, overwrite=True)
        port, log = start_receiver(stack, root, PREFECT_API_URL.value())
        (root / "registry").mkdir()
        proc, address, _ = start_registry(
            root / "registry", notify=(f"http://127.0.0.1:{port}/hooks/{source}", token)
        )
        stack.callback(stop, proc)
        kube = KubernetesCluster(kubeconfig=SecretStr(kubeconfig.read_text()), kubectl_path=kubectl)
        kube.save("bench-kube", overwrite=True)
        pusher = Pusher(address)
        with kube.kubectl() as k:
            for path in rows:
                k.check("create", "namespace", f"bench-{path}", what="creating a namespace")
                (root / path).mkdir()
                (root / path / "web.yaml").write_text(
                    MANIFEST.replace("REPOSITORY", f"{address}/bench/{path}")
                )

        def deploy(path: str, digest: str) -> None:
            before = len(ready)
            state = kubernetes_deploy(
                image=f"{address}/bench/{path}:latest@{digest}", cluster="bench-kube",
                workload="deployment/web", namespace=f"bench-{path}", method="kubectl",
                manifests=str(root / path), rollout_timeout_seconds=120, return_state=True,
            )  # fmt: skip
            if not state.is_completed() or state.result()["outcome"] != "deployed":
                raise SystemExit(f"the deploy of {digest} failed: {state.message}")
            assert len(ready) == before + 1, "no rollout was waited for"

        for path in rows:  # the targets' first deploy (creates the Deployments)
            deploy(path, push_latest(pusher, f"bench/{path}")[0])
        seen = subscribe(stack)
        block = ContainerRegistry(url=f"http://{address}", requests_per_second=100)
        polled = poller(
            stack, block, WatchedImage(repository="bench/polling", policy=MutableTag(tag="latest")),
            interval,
        )  # fmt: skip
        for i in range(tries):
            for path, found in (("notification", seen), ("polling", polled)):
                time.sleep(0.5 + (i * 1.7) % interval)  # the push lands anywhere in a poll cycle
                digest, sent = push_latest(pusher, f"bench/{path}")
                detected = wait_digest(found, digest)
                deploy(path, digest)
                row = {"detected": detected - sent, "ready": ready[-1] - sent}
                row["done"] = time.time() - sent
                if path == "notification":
                    row["accepted"] = (accepted_at(log, sent) or float("nan")) - sent
                rows[path].append(row)
                say(
                    f"try {i + 1}/{tries} {path:12} detected {row['detected']:5.2f} s  "
                    f"pods Ready {row['ready']:5.2f} s  flow done {row['done']:5.2f} s"
                )
    print_part2(rows, tries, interval)


def print_part2(rows: dict[str, list[dict[str, float]]], tries: int, every: float) -> None:
    def med(path: str, key: str) -> float:
        return statistics.median(row.get(key, float("nan")) for row in rows[path])

    print("\nTable 2. Push -> new pods Ready (a Deployment of 2 replicas, kwok nodes), seconds")
    print(f"from the manifest PUT, median of {tries} (min, max); polling every {every:g} s;")
    print("the bench runs kubernetes-deploy (kubectl) as soon as the new digest is seen\n")
    print(
        "| path | receiver accepted | detected | detected -> Ready | push -> Ready "
        "| min | max | flow finished | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    base = med("notification", "ready")
    for path, values in rows.items():
        ready = [row["ready"] for row in values]
        accepted = f"{med(path, 'accepted'):.2f}" if path == "notification" else "-"
        print(
            f"| {path} | {accepted} | {med(path, 'detected'):.2f} "
            f"| {statistics.median(r['ready'] - r['detected'] for r in values):.2f} "
            f"| {med(path, 'ready'):.2f} | {min(ready):.2f} | {max(ready):.2f} "
            f"| {med(path, 'done'):.2f} | {med(path, 'ready') / base:.2f} |"
        )
    deploy = statistics.median(r["ready"] - r["detected"] for r in rows["polling"])
    print(
        f"\nReal pollers wait minutes: at Image Updater's 2 min, detect is ~60 s on average "
        f"(half the interval, up to 120 s) plus the cycle itself (table 1), so push -> Ready "
        f"~{60 + deploy:.0f} s; Flux and Keel (intervals of minutes) alike."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--part", choices=["both", "1", "2"], default="both")
    args = parser.parse_args()

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # run every cleanup, as on Ctrl-C

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)  # even where the shell started us ignoring it
    logging.getLogger("bench").setLevel(logging.WARNING)
    WIRE.install()
    quiet_watcher()
    started = time.perf_counter()
    if args.part in ("both", "1"):
        part1(args.cycles)
    if args.part in ("both", "2"):
        part2(args.tries, args.poll_interval)
    say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
