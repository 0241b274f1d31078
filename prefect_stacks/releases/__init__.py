"""The release watcher's parts: what to follow and which releases count
(:mod:`~prefect_stacks.releases.models`), which stacks a Terraform or provider release
concerns (:mod:`~prefect_stacks.releases.impact`) and how it is told
(:mod:`~prefect_stacks.releases.announce`). The flow is ``flows/releases.py``."""
