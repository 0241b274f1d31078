"""Access management as a stack: what a plan changes in who may do what, in words, and
the principals a plan must never remove (:mod:`~prefect_stacks.iam.summary`). The flow is
``flows/iam.py``; the example stack is ``stacks/iam``."""
