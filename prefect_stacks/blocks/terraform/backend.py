"""The backend of a checked-out stack: does its root module declare one, and if not, the
local backend override that keeps its state outside the temporary copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

_BACKEND_RE = re.compile(r'^\s*(backend\s+"[^"]+"|cloud)\s*\{', re.MULTILINE)
BACKEND_OVERRIDE_FILE = "zz_prefect_stacks_backend_override.tf"


def write_local_backend(module_dir: Path, state_dir: Path) -> None:
    """Point the local backend of ``module_dir`` at ``state_dir`` (created 0700)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (module_dir / BACKEND_OVERRIDE_FILE).write_text(
        "# Written by prefect-stacks: the configuration declares no backend,\n"
        "# so its local state lives outside this temporary copy.\n"
        "terraform {\n"
        '  backend "local" {\n'
        f"    path          = {json.dumps(str(state_dir / 'terraform.tfstate'))}\n"
        f"    workspace_dir = {json.dumps(str(state_dir / 'workspaces'))}\n"
        "  }\n"
        "}\n"
    )


def declares_backend(tf_files: list[Path]) -> bool:
    """Whether any of the root module's files declares a ``backend`` or ``cloud`` block."""
    for path in tf_files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.name.endswith(".tf.json"):
            try:
                data = json.loads(text)
            except ValueError:
                continue
            blocks = data.get("terraform") or []
            blocks = blocks if isinstance(blocks, list) else [blocks]
            if any(isinstance(b, dict) and ("backend" in b or "cloud" in b) for b in blocks):
                return True
        elif _BACKEND_RE.search(strip_hcl_comments(text)):
            return True
    return False


def strip_hcl_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"(#|//).*$", "", text, flags=re.MULTILINE)
