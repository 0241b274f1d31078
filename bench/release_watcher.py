"""What an idle release-watcher poll of 100 repositories costs GitHub.

The GitHub REST fake (tests/fakes/github.py, a real HTTP server on 127.0.0.1) holds N
repositories with 20 releases each. Variants, interleaved, each polled R times after
one warm-up poll:

* naive watcher (baseline) - ``GET /repos/{o}/{r}/releases`` of each repository, no ETags
  (what a cron job with curl does);
* release-watcher          - the ``release-watcher`` flow run on a throwaway Prefect
  server: conditional listings through the ETags it keeps in a ``GitHubResponseCache``
  block between runs, state in Prefect Variables, events, the artifact;
* release-watcher, 1 new   - the same, after one repository published a release.

Per poll: requests GitHub got, how many were ``304``, the primary rate limit spent (the
fake's ``X-RateLimit-Remaining`` before and after), and the time (median of R), with the
ratio to the naive watcher. The flow's time includes a Prefect flow run and its server
calls. Run: ``python bench/release_watcher.py [--repositories 100] [--polls 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOKEN = "ghp_bench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=100)
    parser.add_argument("--polls", type=int, default=5)
    args = parser.parse_args()

    import httpx
    from prefect.blocks.system import Secret
    from prefect.testing.utilities import prefect_test_harness

    from prefect_stacks.flows.releases import WatchedRepository, release_watcher
    from tests.fakes.github import FakeGitHub

    names = [f"acme/tool-{i:03d}" for i in range(args.repositories)]
    with (
        prefect_test_harness(server_startup_timeout=60),
        FakeGitHub(tokens={TOKEN: "bench"}, repos=names, rate_limit=1_000_000) as gh,
    ):
        for name in names:
            for minor in range(20):
                gh.add_release(f"v1.{minor}.0", repo=name, body="Bug fixes. " * 20)
        Secret(value=TOKEN).save("bench-github-token", overwrite=True)
        watched = [WatchedRepository(repository=name) for name in names]
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/vnd.github+json",
            "User-Agent": "bench",
        }
        client = httpx.Client(base_url=gh.api_url, headers=headers, timeout=30)

        def naive() -> None:
            for name in names:
                client.get(f"/repos/{name}/releases", params={"per_page": 50}).raise_for_status()

        def ours() -> None:
            result = release_watcher(
                repositories=watched,
                token_block="bench-github-token",
                api_url=gh.api_url,
                watcher="bench-releases",
            )
            assert not result["problems"], result["problems"]

        published = {"n": 0}

        def ours_one_new() -> None:
            published["n"] += 1
            gh.add_release(f"v2.{published['n']}.0", repo=names[published["n"] % len(names)])
            ours()

        variants: dict[str, Callable[[], None]] = {
            "naive watcher (baseline)": naive,
            "release-watcher": ours,
            "release-watcher, 1 new": ours_one_new,
        }
        for poll in variants.values():  # warm-up: the baseline, the ETag cache
            poll()
        rows: dict[str, list[tuple[int, int, int, float]]] = {k: [] for k in variants}
        for _ in range(args.polls):
            for name, poll in variants.items():
                gh.clear_requests()
                before = gh.rate_limit_remaining(TOKEN)
                start = time.perf_counter()
                poll()
                elapsed = time.perf_counter() - start
                statuses = gh.counts_by_status()
                spent = before - gh.rate_limit_remaining(TOKEN)
                rows[name].append((sum(statuses.values()), statuses.get(304, 0), spent, elapsed))
        client.close()

    base = statistics.median(r[3] for r in rows["naive watcher (baseline)"])
    base_spent = statistics.median(r[2] for r in rows["naive watcher (baseline)"])
    print(f"\n{args.repositories} repositories, 20 releases each, median of {args.polls} polls\n")
    print(
        "| watcher | requests/poll | of which 304 | rate limit spent | ratio spent "
        "| time/poll (s) | ratio time |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, values in rows.items():
        requests = statistics.median(v[0] for v in values)
        not_modified = statistics.median(v[1] for v in values)
        spent = statistics.median(v[2] for v in values)
        seconds = statistics.median(v[3] for v in values)
        print(
            f"| {name} | {requests:.0f} | {not_modified:.0f} | {spent:.0f} "
            f"| {spent / base_spent:.2f} | {seconds:.3f} | {seconds / base:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
