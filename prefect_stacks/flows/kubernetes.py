"""Deploys to Kubernetes, and the rollbacks that stick:

* ``kubernetes-deploy``: an image (by digest) onto a target (cluster + namespace +
  workload) by a method, its rollout within the flow's deadline, functional checks, a
  watch window on Alertmanager; a failure after the change reached the cluster rolls the
  target back to its last known-good image by the same method and quarantines the failed
  digest for the target (a watcher, an automation or a re-sent notification will not
  deploy it again);
* ``kubernetes-rollback``: back to a given digest, or the previous known-good one, and
  the target is pinned there (every deploy of another digest is skipped);
* ``kubernetes-unpin``: lets deploys through again.

Each run records the outcome on the target's record (``prefect_stacks.deploys.targets``).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.kubernetes import KubernetesCluster
from prefect_stacks.blocks.registry import ContainerRegistry
from prefect_stacks.deploys import announce
from prefect_stacks.deploys.checks import AlertWatch, FunctionalCheck, run_checks, watch_alerts
from prefect_stacks.deploys.methods import DeployMethod, method_for
from prefect_stacks.deploys.models import Image, Method, MethodSpec, parse_image
from prefect_stacks.deploys.targets import (
    DeployRecords,
    Release,
    Target,
    TargetRecord,
    check_workload,
)
from prefect_stacks.exceptions import (
    ConfigurationError,
    DeployFailed,
    PrefectStacksError,
    RegistryError,
)


def _cluster(name: str) -> KubernetesCluster:
    return load_block(
        KubernetesCluster,
        name,
        create="create it (Blocks > Kubernetes Cluster) with the cluster's kubeconfig",
    )


def _target(block: KubernetesCluster, cluster: str, namespace: str | None, workload: str):
    return Target(
        cluster=cluster, namespace=namespace or block.namespace, workload=check_workload(workload)
    )


@task(cache_policy=NO_CACHE, task_run_name="image-exists")
def confirm_image(registry: str, image: Image) -> None:
    """The digest exists in the registry (before anything touches the cluster)."""
    block = load_block(
        ContainerRegistry, registry, create="create it (Blocks > Container Registry)"
    )
    host, _, path = image.repository.partition("/")
    if host != block.host:
        raise ConfigurationError(
            f"image {image.repository} is not in registry {block.host} (ContainerRegistry "
            f"block {registry!r}); fix `image` or `registry`"
        )
    try:
        with block.get_client() as client:
            found = client.digest(path, image.digest)
    except RegistryError as exc:
        raise ConfigurationError(f"cannot confirm the image exists: {exc}") from None
    if found is None:
        raise ConfigurationError(
            f"image {image.by_digest} does not exist in {block.host}; nothing was deployed "
            "(check the digest, or push the image first)"
        )


@task(cache_policy=NO_CACHE, task_run_name="deploy-{image.short}")
def apply_image(deployer: DeployMethod, image: Image, timeout_seconds: float) -> dict:
    """Apply ``image`` by the method and wait for the rollout."""
    return deployer.deploy(image, timeout_seconds)


@task(cache_policy=NO_CACHE, task_run_name="checks")
def check_deploy(
    target: Target, image: Image, checks: list[FunctionalCheck], alerts: AlertWatch | None
) -> None:
    """Functional checks, then the watch window."""
    values = dict(
        image=image.pinned,
        digest=image.digest,
        tag=image.tag,
        namespace=target.namespace,
        workload=target.workload,
    )
    run_checks(checks, **values)
    if alerts is not None:
        watch_alerts(alerts)


def _release(image: Image, method: str) -> Release:
    return Release(digest=image.digest, tag=image.tag, method=method, run=flow_run.get_id())


def _running(record: TargetRecord, release: Release) -> Image:
    return Image(repository=record.repository or "", digest=release.digest, tag=release.tag)


def roll_back(
    failure: DeployFailed,
    *,
    records: DeployRecords,
    deployer: DeployMethod,
    failed: Image,
    rollback: bool,
    timeout_seconds: float,
    slack: str | None,
) -> PrefectStacksError:
    """After a failed deploy: quarantine the digest, redeploy the known-good one by the
    same method, record and announce it. Returns the error the run ends with."""
    target = deployer.target
    record = records.update(
        target, lambda r: r.quarantine(failed.digest, str(failure), flow_run.get_id())
    )
    get_run_logger().error("deploy of %s failed (%s): %s", failed.short, failure.stage, failure)
    good = record.known_good
    said = f"deploy of {failed.short} to {target.key} failed ({failure.stage}): {failure}"
    if not rollback or good is None or good.digest == failed.digest:
        why = "rollback is off" if not rollback else "there is no earlier known-good image"
        return PrefectStacksError(f"{said}; {why}; {failed.digest[:19]} is quarantined")
    running = _running(record, good)
    get_run_logger().info("rolling %s back to %s", target.key, running.short)
    try:
        apply_image(deployer, running, timeout_seconds)
    except PrefectStacksError as exc:  # any method's failure: a Terraform one too
        announce.rolled_back(
            target, running, failed=failed, reason=f"{failure}; the rollback failed too: {exc}",
            stage=failure.stage, quarantined=True, pinned=False, slack=slack,
        )  # fmt: skip
        return PrefectStacksError(f"{said}; the rollback to {running.short} failed too: {exc}")
    records.update(target, lambda r: r.roll_back_to(good))
    announce.rolled_back(
        target, running, failed=failed, reason=str(failure), stage=failure.stage,
        quarantined=True, pinned=False, slack=slack,
    )  # fmt: skip
    return PrefectStacksError(
        f"{said}; rolled back to {running.short}; {failed.digest[:19]} is quarantined for "
        "this target until a newer image is deployed"
    )


@flow(name="kubernetes-deploy", flow_run_name="deploy-{workload}")
@fails_cleanly
def kubernetes_deploy(
    image: str,
    cluster: str,
    workload: str,
    namespace: str | None = None,
    method: Method = "kubectl",
    manifests: str | None = None,
    stack: str | None = None,
    workspace: str | None = None,
    tag: str | None = None,
    registry: str | None = None,
    rollout_timeout_seconds: int = 300,
    checks: list[FunctionalCheck] | None = None,
    alerts: AlertWatch | None = None,
    rollback: bool = True,
    force: bool = False,
    slack: str | None = None,
) -> dict:
    """Deploy an image by digest to a Kubernetes workload; roll back to the last known-good
    image if its rollout, checks or watch window fail.

    Args:
        image: `registry/repository[:tag]@sha256:...` (an event's `image`, or the digest
            image-builder returned).
        cluster: Name of the KubernetesCluster block.
        workload: The target workload, `deployment/<name>` (statefulset, daemonset).
        namespace: Namespace of the workload; the block's when empty.
        method: kubectl (manifests), terraform-kubernetes or terraform-helm (a stack).
        manifests: kubectl: directory, file or kustomization on the worker.
        stack: terraform-*: name of the TerraformStack block (stacks/k8s-app,
            stacks/helm-app or your own taking the same variables).
        workspace: terraform-*: Terraform workspace; the block's when empty.
        tag: The tag the image was pushed as (for the record and messages).
        registry: Name of a ContainerRegistry block: confirm the digest exists first.
        rollout_timeout_seconds: Deadline for the apply and rollout, owned by this run.
        checks: Functional checks after the rollout (HTTP or a command).
        alerts: Watch Alertmanager for matching firing alerts after the checks.
        rollback: Redeploy the last known-good image when the deploy fails.
        force: Deploy a quarantined digest anyway (never overrides a pin).
        slack: Name of a SlackChannel block to tell.
    """
    logger = get_run_logger()
    wanted = parse_image(image, tag)
    block = _cluster(cluster)
    target = _target(block, cluster, namespace, workload)
    spec = MethodSpec(method=method, manifests=manifests, stack=stack, workspace=workspace)
    spec.check()
    if registry:
        confirm_image(registry, wanted)
    records = DeployRecords()
    with records.locked(target), block.kubectl() as kubectl:
        refusal = records.load(target).refusal(wanted.digest, force)
        if refusal:
            logger.warning("not deploying %s: %s", wanted.short, refusal)
            return {"outcome": "skipped", "target": target.key, "reason": refusal}
        deployer = method_for(spec, kubectl, target)
        logger.info("deploying %s to %s by %s", wanted.pinned, target.key, method)
        try:
            summary = apply_image(deployer, wanted, rollout_timeout_seconds)
            check_deploy(target, wanted, checks or [], alerts)
        except DeployFailed as failure:
            error = roll_back(
                failure, records=records, deployer=deployer, failed=wanted, rollback=rollback,
                timeout_seconds=rollout_timeout_seconds, slack=slack,
            )  # fmt: skip
            logger.error("%s", error)
            return Failed(message=str(error), data=error)
        records.update(
            target, lambda r: r.record_good(_release(wanted, method), wanted.repository, spec)
        )
    announce.succeeded(target, wanted, method, slack)
    return {"outcome": "deployed", "target": target.key, "image": wanted.pinned, **summary}


@flow(name="kubernetes-rollback", flow_run_name="rollback-{workload}")
@fails_cleanly
def kubernetes_rollback(
    cluster: str,
    workload: str,
    namespace: str | None = None,
    digest: str | None = None,
    reason: str = "manual rollback",
    rollout_timeout_seconds: int = 300,
    slack: str | None = None,
) -> dict:
    """Roll a target back to a digest (or its previous known-good image) by the method it
    was last deployed with, and pin it there until kubernetes-unpin runs.

    Args:
        cluster: Name of the KubernetesCluster block.
        workload: The target workload, `deployment/<name>`.
        namespace: Namespace of the workload; the block's when empty.
        digest: `sha256:...` to go back to; empty: the previous known-good image.
        reason: Why (shown on the record, in the event and on Slack).
        rollout_timeout_seconds: Deadline for the apply and rollout.
        slack: Name of a SlackChannel block to tell.
    """
    block = _cluster(cluster)
    target = _target(block, cluster, namespace, workload)
    records = DeployRecords()
    with records.locked(target), block.kubectl() as kubectl:
        record = records.load(target)
        if record.method is None or record.repository is None:
            raise ConfigurationError(f"{target.key} has no deploy on record to roll back from")
        to = _rollback_release(record, digest)
        running = _running(record, to)
        apply_image(method_for(record.method, kubectl, target), running, rollout_timeout_seconds)
        from_digest = record.deployed.digest if record.deployed else None
        records.update(target, lambda r: r.pin(to, reason, flow_run.get_id()))
    failed = Image(record.repository, from_digest) if from_digest else None
    announce.rolled_back(
        target, running, failed=failed, reason=reason, stage="manual", quarantined=False,
        pinned=True, slack=slack,
    )  # fmt: skip
    return {"outcome": "rolled-back", "target": target.key, "image": running.pinned, "pinned": True}


def _rollback_release(record: TargetRecord, digest: str | None) -> Release:
    if digest is None:
        previous = record.previous()
        if previous is None:
            raise ConfigurationError(
                f"{record.target.key} has no earlier known-good image; give `digest`"
            )
        return previous
    for release in [record.known_good, *record.history, record.deployed]:
        if release is not None and release.digest == digest:
            return release
    return Release(digest=parse_image(f"{record.repository}@{digest}").digest)


@flow(name="kubernetes-unpin", flow_run_name="unpin-{workload}")
@fails_cleanly
def kubernetes_unpin(cluster: str, workload: str, namespace: str | None = None) -> dict:
    """Let deploys reach a target that a rollback pinned.

    Args:
        cluster: Name of the KubernetesCluster block.
        workload: The target workload, `deployment/<name>`.
        namespace: Namespace of the workload; the block's when empty.
    """
    block = _cluster(cluster)
    target = _target(block, cluster, namespace, workload)
    records = DeployRecords()
    with records.locked(target):
        was = records.update(target, TargetRecord.unpin)
    get_run_logger().info(
        "%s: %s", target.key, f"unpinned (was {was.digest[:19]})" if was else "was not pinned"
    )
    return {"outcome": "unpinned" if was else "not-pinned", "target": target.key}
