"""What running a stack through prefect-stacks costs over the raw terraform CLI.

Workload: a 20-resource local stack (``terraform_data`` whose ``local-exec`` sleeps W
seconds, standing in for the time a real resource takes to create), applied and then
destroyed, in a fresh checkout each time. Variants, interleaved in one process:

* raw CLI (baseline) - what a CI job does by hand: ``terraform init``,
  ``terraform apply -auto-approve``, ``terraform destroy -auto-approve``;
* block only        - the TerraformStack block's steps without Prefect runs (checkout,
  init, workspace, saved plan, ``show -json`` summary, apply, outputs; init, destroy):
  prefect-stacks' own cost;
* flows             - the ``stack-apply`` then ``stack-destroy`` flows on a throwaway
  Prefect server started by this script (startup not timed);
* two empty flows   - Prefect's fixed cost of two flow runs on the same server, for
  reading the flows row (in Prefect 3.9 most of it is the flow-run heartbeat thread,
  joined at exit after its 1 s sleep).

Prints the median of N runs of each and the ratio against the baseline.
Run: ``python bench/terraform_overhead.py [--runs 5] [--resources 20] [--work 0.1,1]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def write_stack(path: Path, resources: int, work: float) -> None:
    path.mkdir(parents=True)
    (path / "main.tf").write_text(
        f"""
variable "label" {{ default = "bench" }}
resource "terraform_data" "r" {{
  count = {resources}
  input = "${{var.label}}-${{count.index}}"
  provisioner "local-exec" {{
    command = "sleep {work}"
  }}
}}
output "labels" {{ value = terraform_data.r[*].output }}
"""
    )


def run_raw(stack: Path, work: Path) -> float:
    tf = shutil.which("terraform")
    assert tf, "terraform not on PATH"
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    start = time.perf_counter()
    checkout = work / "raw"
    shutil.copytree(stack, checkout)
    for argv in (
        [tf, "init", "-input=false", "-no-color"],
        [tf, "apply", "-auto-approve", "-input=false", "-no-color"],
        [tf, "destroy", "-auto-approve", "-input=false", "-no-color"],
    ):
        subprocess.run(argv, cwd=checkout, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(checkout)
    return elapsed


def run_block(block_name: str) -> float:
    from prefect_stacks.blocks.terraform import TerraformStack

    stack = TerraformStack.load(block_name)
    start = time.perf_counter()
    with stack.prepare("bench-block") as wd:
        stack.init(wd)
        stack.apply(wd, stack.plan(wd))
        stack.outputs(wd)
    with stack.prepare("bench-block") as wd:
        stack.init(wd, create_workspace=False)
        stack.destroy(wd)
    return time.perf_counter() - start


def run_flow(block_name: str) -> float:
    from prefect_stacks.flows.stacks import stack_apply, stack_destroy

    start = time.perf_counter()
    applied = stack_apply(stack=block_name, workspace="bench", return_state=True)
    destroyed = stack_destroy(stack=block_name, workspace="bench", return_state=True)
    elapsed = time.perf_counter() - start
    if not (applied.is_completed() and destroyed.is_completed()):
        raise SystemExit(f"flow failed: {applied.message} / {destroyed.message}")
    return elapsed


def run_empty_flows() -> float:
    from prefect import flow

    @flow(name="bench-empty")
    def empty() -> None:
        return None

    start = time.perf_counter()
    empty()
    empty()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--resources", type=int, default=20)
    parser.add_argument(
        "--work", default="0.1,1", help="seconds each resource's local-exec sleeps; a list"
    )
    args = parser.parse_args()
    works = [float(w) for w in args.work.split(",")]

    from prefect.testing.utilities import prefect_test_harness

    from prefect_stacks.blocks.terraform import TerraformStack

    results: dict[float, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="prefect-stacks-bench-") as tmp:
        work = Path(tmp)
        os.environ["PREFECT_STACKS_HOME"] = str(work / "home")
        print(f"starting a throwaway Prefect server ({args.runs} runs each) ...", flush=True)
        with prefect_test_harness(server_startup_timeout=120):
            for w in works:
                stack = work / f"stack-{w}"
                write_stack(stack, args.resources, w)
                name = f"bench-{str(w).replace('.', '-')}"
                TerraformStack(source=str(stack), state_dir=str(work / f"state-{w}")).save(name)
                run_flow(name)  # warm-up: imports, block type registration
                times: dict[str, list[float]] = {k: [] for k in ("raw", "block", "flow", "empty")}
                for i in range(args.runs):
                    times["raw"].append(run_raw(stack, work))
                    times["block"].append(run_block(name))
                    times["flow"].append(run_flow(name))
                    times["empty"].append(run_empty_flows())
                    print(
                        f"  work {w} s, run {i + 1}: "
                        + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                        flush=True,
                    )
                results[w] = times
    labels = {
        "raw": "raw terraform CLI (baseline)",
        "block": "TerraformStack block only",
        "flow": "stack-apply + stack-destroy flows",
        "empty": "two empty flows (Prefect fixed cost)",
    }
    print()
    print(
        f"apply + destroy of {args.resources} resources, median of {args.runs} runs, "
        "ratio = variant / raw CLI"
    )
    print(f"| {'work/resource':>13} | {'variant':<38} | {'median s':>8} | {'ratio':>5} |")
    print(f"|{'-' * 15}|{'-' * 40}|{'-' * 10}|{'-' * 7}|")
    verdicts = []
    for w, times in results.items():
        raw = statistics.median(times["raw"])
        for key, label in labels.items():
            med = statistics.median(times[key])
            print(f"| {w:>11} s | {label:<38} | {med:8.2f} | {med / raw:5.2f} |")
        ratio = statistics.median(times["flow"]) / raw
        verdicts.append(
            f"work {w} s: flows/raw = {ratio:.2f} ({'met' if ratio <= 1.5 else 'NOT met'})"
        )
    print("\ntarget flows/raw <= 1.50: " + "; ".join(verdicts))
    sys.exit(0)


if __name__ == "__main__":
    main()
