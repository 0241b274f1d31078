"""Deploys to Kubernetes targets: what an image is and how it is deployed (models.py),
the methods (methods.py), the checks after a rollout (checks.py), the record of each
target on the Prefect server with its known-good image, quarantine and pin (targets.py),
and telling people (announce.py). The flows are in ``prefect_stacks.flows.kubernetes``."""
