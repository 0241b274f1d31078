"""What keeps secrets out of an image built by :func:`~prefect_stacks.blocks.docker.build_image`.

Build arguments and labels are recorded in the image: ``docker history --no-trunc``
shows every build argument a ``RUN`` step saw, ``docker inspect`` every label, for
anyone who can pull the image. So:

* a build argument whose name says it holds a secret (a part of the name that is or ends
  in TOKEN, PASSWORD, PASSWD, SECRET, CREDENTIAL(S), or is KEY, APIKEY, ACCESSKEY,
  PRIVATEKEY, SECRETKEY, SIGNINGKEY, SSHKEY; any case) is refused when the build is
  described (:func:`secret_like_names`);
* a build argument or label that holds a secret of the build (the registry password,
  the git token), whole or in part, is refused before Docker is asked
  (:func:`refuse_secrets`).

The git token itself only ever reaches git's environment (``_internal.git``), and the
registry password only Docker's login and push authentication.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from prefect_stacks.exceptions import ConfigurationError

_SECRET_NAME_RE = re.compile(
    r"(?:^|[_.-])(?:[A-Z0-9]*(?:TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIALS?)|"
    r"(?:API|ACCESS|PRIVATE|SECRET|SIGNING|SSH)?KEY)(?:$|[_.-])",
    re.IGNORECASE,
)
BUILD_ARGS_ARE_PUBLIC = (
    "build arguments are stored in the image: `docker history` shows them to anyone who can pull it"
)
HOW_TO_PROCEED = (
    "Give the build no secret: fetch private dependencies into the checkout before the "
    "build, or make them readable to the builder without one"
)


def secret_like_names(build_args: Iterable[str]) -> list[str]:
    """The build argument names that say they hold a secret, sorted."""
    return sorted(name for name in build_args if _SECRET_NAME_RE.search(name))


def refuse_secret_names(build_args: Iterable[str]) -> None:
    """``ValueError`` (a pydantic validator's error) naming the secret-like names."""
    names = secret_like_names(build_args)
    if names:
        raise ValueError(
            f"build argument(s) {', '.join(map(repr, names))} look like secrets: "
            f"{BUILD_ARGS_ARE_PUBLIC}. {HOW_TO_PROCEED}; if the value is no secret, "
            "rename the argument."
        )


def refuse_secrets(
    build_args: Mapping[str, str], labels: Mapping[str, str], secrets: Iterable[str]
) -> None:
    """A ``ConfigurationError`` when a build argument or label holds one of ``secrets``
    (equal to it, or containing one of 4 characters or more); the message never shows
    the value."""
    in_play = [str(s) for s in secrets if s]
    for kind, values in (("build argument", build_args), ("label", labels)):
        for name, value in values.items():
            text = str(value)
            if any(text == s or (len(s) >= 4 and s in text) for s in in_play):
                raise ConfigurationError(
                    f"{kind} {name!r} holds a secret of this build (the git token or the "
                    f"registry password): {BUILD_ARGS_ARE_PUBLIC}, and labels likewise "
                    f"(`docker inspect`). Remove it. {HOW_TO_PROCEED}."
                )
