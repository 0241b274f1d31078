"""The control plane's supervisor (tests/testbed/cluster.py) with stand-in kwokctl and
kubectl scripts: a detached process the cluster leaves behind is still reaped (no
process, no zombie), and a failed create is an error with kwokctl's own words."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.testbed.cluster import ClusterError, KwokCluster

FAKE_KWOKCTL = """#!{python}
import os, subprocess, sys
args = sys.argv[1:]
name = args[args.index("--name") + 1]
pids = os.path.join(os.environ["KWOK_WORKDIR"], "clusters", name, "pids")
if "create" in args:
    if os.environ.get("FAKE_FAIL"):
        print("boom: kube-apiserver port 6443 is in use"); sys.exit(1)
    os.makedirs(pids, exist_ok=True)
    # what kwokctl does: a detached component, and kwokctl itself exits
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    open(os.path.join(pids, "etcd.pid"), "w").write(str(p.pid))
    os.makedirs(os.path.dirname(pids) + "/", exist_ok=True)
    open(os.path.join(os.path.dirname(pids), "kubeconfig.yaml"), "w").write("")
elif "delete" in args:
    pass  # a delete that misses a process: the supervisor must still get rid of it
"""

FAKE_KUBECTL = """#!/bin/sh
case "$*" in *readyz*) echo ok ;; esac
exit 0
"""


@pytest.fixture
def bins(tmp_path: Path) -> dict[str, Path]:
    kwokctl = tmp_path / "kwokctl"
    kwokctl.write_text(FAKE_KWOKCTL.format(python=sys.executable))
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    for script in (kwokctl, kubectl):
        script.chmod(0o755)
    names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok")
    return {"kwokctl": kwokctl, "kubectl": kubectl, **{n: tmp_path / n for n in names}}


def test_a_detached_process_the_cluster_leaves_is_reaped(tmp_path, bins):
    cluster = KwokCluster(tmp_path / "work", bins, "v1.36.3", stop_grace=0.5)
    kubeconfig = cluster.start(timeout=60)
    assert kubeconfig == tmp_path / "work/clusters/stacks/kubeconfig.yaml"
    [pid] = cluster.pids
    os.kill(pid, 0)  # running, and not our child: kwokctl detached it
    cluster.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed AND reaped: a zombie would still answer
    assert cluster.alive() == []
    assert not (tmp_path / "work").exists()


def test_a_failed_create_says_what_kwokctl_said(tmp_path, bins, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    cluster = KwokCluster(tmp_path / "work", bins, "v1.36.3", stop_grace=0.5)
    with pytest.raises(ClusterError, match="port 6443 is in use"):
        cluster.start(timeout=60)
    assert not (tmp_path / "work").exists()
