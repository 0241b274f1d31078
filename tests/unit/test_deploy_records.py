"""The record of a deploy target, without a server: what is refused and why, what a
rollback goes back to, the history, and a record that always fits a Prefect Variable;
and the parameters a deploy takes (image references, checks, alert matchers)."""

from __future__ import annotations

import json

import pytest

from prefect_stacks.blocks.alertmanager import matchers_of
from prefect_stacks.deploys.checks import CommandCheck, HttpCheck
from prefect_stacks.deploys.models import MethodSpec, parse_image
from prefect_stacks.deploys.targets import (
    MAX_VALUE_CHARS,
    Release,
    Target,
    TargetRecord,
    check_workload,
)
from prefect_stacks.exceptions import ConfigurationError


def d(n: int) -> str:
    return f"sha256:{n:064x}"


def record() -> TargetRecord:
    return TargetRecord(target=Target(cluster="prod", namespace="shop", workload="deployment/web"))


def good(rec: TargetRecord, n: int) -> None:
    rec.record_good(Release(digest=d(n), tag=f"{n}.0"), "r.example/shop/web", MethodSpec(
        method="kubectl", manifests="/srv/k8s"))  # fmt: skip


def test_a_quarantined_digest_is_refused_unless_forced_and_a_working_deploy_clears_it():
    rec = record()
    good(rec, 1)
    rec.quarantine(d(2), "rollout: pods never Ready", run=None)
    assert "quarantined" in rec.refusal(d(2)) and "force=true" in rec.refusal(d(2))
    assert rec.refusal(d(2), force=True) is None
    assert rec.refusal(d(3)) is None  # a newer image goes through
    good(rec, 2)  # deployed with force, and it worked
    assert rec.quarantine_of(d(2)) is None


def test_a_pin_holds_against_every_other_digest_even_forced():
    rec = record()
    good(rec, 1)
    good(rec, 2)
    rec.pin(Release(digest=d(1)), "bad release", run=None)
    assert rec.deployed.digest == d(1)
    assert "pinned" in rec.refusal(d(3), force=True)
    assert rec.refusal(d(1)) is None  # re-applying the pin is fine
    assert rec.unpin().digest == d(1) and rec.unpin() is None
    assert rec.refusal(d(3)) is None


def test_previous_is_the_known_good_before_the_one_running():
    rec = record()
    assert rec.previous() is None
    for n in (1, 2, 3):
        good(rec, n)
    assert [r.digest for r in rec.history] == [d(2), d(1)]
    assert rec.previous().digest == d(2)
    rec.roll_back_to(rec.history[0])
    assert rec.previous().digest == d(3)  # back on 2: the previous known-good is 3


def test_the_record_always_fits_a_variable():
    rec = record()
    for n in range(40):
        good(rec, n)
        rec.quarantine(d(1000 + n), "x" * 500, run="0b2f6c55-4d5a-4b8e-9a55-6f2d1c3e8a10")
    value = rec.value()
    assert len(json.dumps(value)) <= MAX_VALUE_CHARS
    assert value["quarantined"][0]["digest"] == d(1039)  # the newest are kept
    assert len(value["quarantined"][0]["reason"]) <= 160
    assert TargetRecord.model_validate(value).known_good.digest == d(39)


def test_image_references():
    image = parse_image("127.0.0.1:5000/shop/web:1.4@" + d(7))
    assert (image.repository, image.tag, image.digest) == ("127.0.0.1:5000/shop/web", "1.4", d(7))
    assert image.pinned == f"127.0.0.1:5000/shop/web:1.4@{d(7)}"
    assert parse_image(f"ghcr.io/acme/web@{d(7)}", tag="main").tag == "main"
    with pytest.raises(ConfigurationError, match="no digest"):
        parse_image("ghcr.io/acme/web:latest")
    with pytest.raises(ConfigurationError, match="not an image digest"):
        parse_image("ghcr.io/acme/web@sha256:abc")
    with pytest.raises(ConfigurationError, match="not a valid image tag"):
        parse_image(f"ghcr.io/acme/web@{d(7)}", tag="a;rm -rf /")


def test_workloads_methods_checks_and_matchers_are_checked():
    assert check_workload("Deployment/web") == "deployment/web"
    for bad in ("web", "pod/web", "deployment/Web_1", "deployment/"):
        with pytest.raises(ConfigurationError, match="workload"):
            check_workload(bad)
    with pytest.raises(ConfigurationError, match="needs `manifests`"):
        MethodSpec(method="kubectl").check()
    with pytest.raises(ConfigurationError, match="needs `stack`"):
        MethodSpec(method="terraform-helm").check()
    with pytest.raises(ValueError, match="unknown placeholder"):
        HttpCheck(url="http://shop/{version}")
    with pytest.raises(ValueError, match="unknown placeholder"):
        CommandCheck(command=["check", "{nope}"])
    assert matchers_of({"severity": "critical", "service": 'a"b'}) == [
        'service="a\\"b"',
        'severity="critical"',
    ]
    with pytest.raises(ConfigurationError, match="not an Alertmanager matcher"):
        matchers_of(["severity: critical"])
