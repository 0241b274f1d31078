"""The ``AnsiblePlaybook`` block: a playbook, its inventory and how to run it, and the run
it hands back (:class:`PlaybookRun`), through ansible-runner.

* **Each task's result reaches the run log as it happens** (ansible-runner's event
  stream): ``changed: [web-1] Switch the maintenance page on``; a failure carries the
  module's own message, stdout and stderr, whole.
* **Secrets never reach argv**: the vault password, the SSH key and ``secret_vars`` are
  written to 0600 files in a private 0700 directory that is removed afterwards, and
  named on the command line by path only (``--vault-password-file``, ``-e @file``,
  ``ANSIBLE_PRIVATE_KEY_FILE``). Their values are masked in every log line.
* **The recap** (ok / changed / failed / unreachable / skipped per host) comes back as a
  :class:`PlaybookResult`; a failed or unreachable host is an :class:`AnsibleError` that
  names it, and so is a wrong vault password or a playbook Ansible cannot read.

``playbook`` is a path, or the name of a playbook shipped with prefect-stacks
(``maintenance-nginx``); its directory is the project directory, so its roles and
includes resolve as they would for ``ansible-playbook``.
"""

from prefect_stacks.blocks.ansible.block import AnsiblePlaybook
from prefect_stacks.blocks.ansible.run import PlaybookResult, PlaybookRun
from prefect_stacks.blocks.ansible.tasks import run_playbook

__all__ = ["AnsiblePlaybook", "PlaybookResult", "PlaybookRun", "run_playbook"]
