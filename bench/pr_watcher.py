"""What a pull-request poll costs GitHub when nothing changed, with 1,000 open pull requests.

The GitHub REST fake (tests/fakes/github.py, a real HTTP server on 127.0.0.1) holds N open
pull requests. Variants, interleaved, each polled R times after one warm-up poll:

* naive watcher (baseline) - list the open pull requests (100 a page), then GET each one
  (what a watcher does that wants ``merged``/``mergeable`` per pull request), no ETags;
* prefect-stacks           - ``GitHubRepository.list_open_pull_requests`` with its ETag
  cache: every page is a conditional request, answered ``304`` when nothing changed (the
  cache as the watcher keeps it between runs in a ``GitHubResponseCache`` block);
* prefect-stacks, 1 change - the same, after one pull request got a new commit.

Per poll: requests sent, how many were ``304``, the primary rate limit spent (the fake's
``X-RateLimit-Remaining`` before and after), and the time (median of R), with the ratio
to the naive watcher. Run: ``python bench/pr_watcher.py [--prs 1000] [--polls 5]``.
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOKEN = "ghp_bench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prs", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=5)
    args = parser.parse_args()

    import httpx
    from pydantic import SecretStr

    from prefect_stacks.blocks.github import GitHubRepository
    from tests.fakes.github import FakeGitHub

    with FakeGitHub(tokens={TOKEN: "bench"}, repos=["acme/shop"], rate_limit=1_000_000) as gh:
        for i in range(args.prs):
            gh.open_pull_request(f"change {i}", head=f"feature/{i}")
        repo = GitHubRepository(
            owner="acme", repo="shop", token=SecretStr(TOKEN), api_url=gh.api_url
        )
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/vnd.github+json",
            "User-Agent": "bench",
        }
        client = httpx.Client(base_url=gh.api_url, headers=headers, timeout=30)

        def naive() -> None:
            url: str | None = "/repos/acme/shop/pulls?state=open&per_page=100"
            numbers = []
            while url:
                response = client.get(url)
                response.raise_for_status()
                numbers += [pr["number"] for pr in response.json()]
                url = response.links.get("next", {}).get("url")
            for number in numbers:
                client.get(f"/repos/acme/shop/pulls/{number}").raise_for_status()

        def ours() -> None:
            prs = repo.list_open_pull_requests()
            assert len(prs) == args.prs

        changed = {"n": 0}

        def ours_one_change() -> None:
            changed["n"] += 1
            gh.push(1 + changed["n"] % args.prs)
            ours()

        variants: dict[str, Callable[[], None]] = {
            "naive watcher (baseline)": naive,
            "prefect-stacks": ours,
            "prefect-stacks, 1 change": ours_one_change,
        }
        for poll in variants.values():  # warm-up: fills the ETag cache
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
    print(f"\n{args.prs} open pull requests, median of {args.polls} polls (nothing changed")
    print("unless said)\n")
    print("| watcher | requests/poll | of which 304 | rate limit spent | time/poll (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for name, values in rows.items():
        requests = statistics.median(v[0] for v in values)
        not_modified = statistics.median(v[1] for v in values)
        spent = statistics.median(v[2] for v in values)
        seconds = statistics.median(v[3] for v in values)
        print(
            f"| {name} | {requests:.0f} | {not_modified:.0f} | {spent:.0f} | {seconds:.3f} "
            f"| {seconds / base:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
