"""The ``stacks/kubernetes-cluster`` Terraform stack (Scaleway Kapsule).

It cannot be applied here (no cloud API, no account), so what its README promises is
checked without Scaleway:

- ``terraform fmt -check -recursive``;
- the contract, read from the ``.tf`` files by a small HCL scanner (strings, comments
  and ``${...}`` skipped, so a brace in a string cannot confuse it): descriptions,
  validations, the variable and output tables of the README, the sensitive kubeconfig;
- the variable validations, run by ``terraform plan`` on the real ``variables.tf`` alone
  (no provider is needed for variables);
- the ``kubeconfig`` output's own expression, evaluated by Terraform with stand-in
  values and given to a ``KubernetesCluster`` block;
- with the scaleway provider from the test bed: ``terraform validate`` and the stack's
  ``terraform test`` (mocked provider). The test bed does not build that provider yet:
  then those tests skip, saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from prefect_stacks import KubernetesCluster, stack_path
from tests.conftest import require_provider

STACK = stack_path("kubernetes-cluster")
README = STACK / "README.md"
KUBECONFIG_REF = "scaleway_k8s_cluster.this.kubeconfig[0]"


# ------------------------------------------------------------------ a small HCL scanner
@dataclass
class Block:
    kind: str
    labels: list[str]
    attrs: dict[str, str] = field(default_factory=dict)  # name -> raw expression text
    blocks: list[Block] = field(default_factory=list)

    def children(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind]


def _string_end(text: str, i: int) -> int:
    """Index just past the string literal that starts at ``text[i] == '"'``."""
    i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        elif text.startswith(("$${", "%%{"), i):
            i += 3
        elif text.startswith(("${", "%{"), i):
            i = _template_end(text, i + 2)
        else:
            i += 1
    raise ValueError("unterminated string literal")


def _template_end(text: str, i: int) -> int:
    """Index just past the ``}`` closing a template interpolation opened before ``i``."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _string_end(text, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i + 1
            depth -= 1
        i += 1
    raise ValueError("unterminated interpolation")


def _mask(text: str) -> str:
    """``text`` with string contents and comments blanked (same offsets, newlines kept)."""
    out = list(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < len(text):
        if text[i] == '"':
            end = _string_end(text, i)
            blank(i + 1, end - 1)
            i = end
        elif text[i] == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = len(text) if end < 0 else end + 2
            blank(i, end)
            i = end
        elif text.startswith("<<", i):
            raise ValueError("heredocs are not supported by this scanner: use a string")
        else:
            i += 1
    return "".join(out)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_OPEN = {"(": ")", "[": "]", "{": "}"}


def _close(masked: str, i: int) -> int:
    """Index of the bracket closing the one at ``masked[i]``."""
    stack = [_OPEN[masked[i]]]
    for j in range(i + 1, len(masked)):
        c = masked[j]
        if c in _OPEN:
            stack.append(_OPEN[c])
        elif c in ")]}":
            if c != stack.pop():
                raise ValueError(f"unbalanced {c!r} at offset {j}")
            if not stack:
                return j
    raise ValueError(f"unclosed {masked[i]!r} at offset {i}")


def _parse_body(text: str, masked: str, start: int, end: int) -> Block:
    body = Block("body", [])
    i = start
    while True:
        while i < end and masked[i].isspace():
            i += 1
        if i >= end:
            return body
        name = _IDENT.match(masked, i)
        if not name:
            raise ValueError(f"unexpected {text[i : i + 20]!r} at offset {i}")
        i = name.end()
        while masked[i] in " \t":
            i += 1
        if masked[i] == "=" and masked[i + 1] != "=":
            j = i + 1
            while j < end and masked[j] != "\n":  # a value ends at a newline outside brackets
                j = _close(masked, j) + 1 if masked[j] in _OPEN else j + 1
            body.attrs[name.group()] = text[i + 1 : j].strip()
            i = j
            continue
        labels = []
        while masked[i] != "{":
            if masked[i] == '"':
                label_end = _string_end(text, i)
                labels.append(json.loads(text[i:label_end]))
                i = label_end
            elif masked[i].isspace():
                i += 1
            else:
                label = _IDENT.match(masked, i)
                if not label:
                    raise ValueError(f"unexpected {text[i : i + 20]!r} at offset {i}")
                labels.append(label.group())
                i = label.end()
        close = _close(masked, i)
        inner = _parse_body(text, masked, i + 1, close)
        body.blocks.append(Block(name.group(), labels, inner.attrs, inner.blocks))
        i = close + 1


def parse_hcl(text: str) -> Block:
    masked = _mask(text)
    return _parse_body(text, masked, 0, len(masked))


def _stack_blocks() -> list[Block]:
    found = []
    for path in sorted(STACK.glob("*.tf")):
        found += parse_hcl(path.read_text()).blocks
    return found


def _by_kind(kind: str) -> dict[str, Block]:
    return {b.labels[0]: b for b in _stack_blocks() if b.kind == kind}


def _string(raw: str) -> str:
    """The value of a plain HCL string literal (no interpolation)."""
    assert raw.startswith('"') and raw.endswith('"') and "${" not in raw, raw
    return json.loads(raw)


def _readme_table(section: str) -> dict[str, list[str]]:
    """Rows of the table under ``## <section>`` in the README: first cell's name -> cells."""
    text = README.read_text()
    match = re.search(rf"^## {section}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {section}' section"
    rows = {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells:
            rows[cells[0].strip("`")] = cells[1:]
    assert rows, f"README's {section} section has no table rows"
    return rows


# ------------------------------------------------------------------ running terraform
def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TF_VAR_", "TF_CLI_ARGS"))
        and k not in ("TF_WORKSPACE", "TF_DATA_DIR", "TF_CLI_CONFIG_FILE")
    }
    # No CLI config (so no registry, no ~/.terraformrc) unless a test gives one.
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    env["TF_CLI_CONFIG_FILE"] = os.devnull
    env.update(extra)
    return env


def tf(terraform: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [terraform, *args, "-no-color"] if args[0] != "fmt" else [terraform, *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


# ------------------------------------------------------------------ formatting, scanner
def test_terraform_fmt_check(terraform_bin):
    result = tf(terraform_bin, STACK, "fmt", "-check", "-recursive", "-diff", ".")
    assert result.returncode == 0, f"terraform fmt -check:\n{result.stdout}{result.stderr}"


def test_the_scanner_reads_strings_comments_and_interpolations():
    block = parse_hcl(
        '# a } comment\nvariable "x" {\n  description = "a { brace ${join("}", ["{"])}"\n'
        '  default     = { a = [1, 2], b = "}" }\n  validation {\n'
        '    condition = var.x != "}" // another }\n  }\n}\n'
    ).blocks
    assert [(b.kind, b.labels) for b in block] == [("variable", ["x"])]
    assert block[0].attrs["description"] == '"a { brace ${join("}", ["{"])}"'
    assert block[0].attrs["default"] == '{ a = [1, 2], b = "}" }'
    assert block[0].children("validation")[0].attrs["condition"].startswith('var.x != "}"')
    with pytest.raises(ValueError):
        parse_hcl('variable "x" {\n  default = "open\n')


def test_the_stack_has_the_resources_its_readme_lists():
    blocks = _stack_blocks()
    resources = {b.labels[0] for b in blocks if b.kind == "resource"}
    assert resources == {
        "scaleway_vpc_private_network",
        "scaleway_k8s_cluster",
        "scaleway_k8s_pool",
    }
    assert {b.labels[0] for b in blocks if b.kind == "data"} == {"scaleway_k8s_version"}
    text = README.read_text()
    for resource in resources:
        assert f"`{resource}.this`" in text


def test_versions_pin_terraform_and_a_scaleway_2x_provider():
    (terraform,) = [b for b in _stack_blocks() if b.kind == "terraform"]
    assert _string(terraform.attrs["required_version"]) == ">= 1.4"
    (required,) = terraform.children("required_providers")
    scaleway = required.attrs["scaleway"]
    assert re.search(r'source\s*=\s*"scaleway/scaleway"', scaleway), scaleway
    assert re.search(r'version\s*=\s*"~> 2\.\d+"', scaleway), scaleway


# ------------------------------------------------------------------ variables
def test_every_variable_has_a_type_a_description_and_if_not_bool_a_validation():
    variables = _by_kind("variable")
    assert len(variables) >= 15
    for name, block in variables.items():
        assert "type" in block.attrs, f"variable {name} has no type"
        assert len(_string(block.attrs.get("description", '""'))) >= 20, (
            f"variable {name} has no real description"
        )
        validations = block.children("validation")
        if block.attrs["type"] != "bool":
            assert validations, f"variable {name} ({block.attrs['type']}) has no validation"
        for validation in validations:
            assert f"var.{name}" in validation.attrs["condition"], name
            assert f'\\"{name}\\"' in validation.attrs["error_message"], (
                f"variable {name}: the error message must name the variable"
            )


def test_the_readme_variables_table_is_the_variables_tf():
    variables = _by_kind("variable")
    table = _readme_table("Variables")
    assert list(table) == list(variables), "README's variables table must list them in order"
    for name, (type_, default, _meaning) in table.items():
        block = variables[name]
        assert f"`{block.attrs['type']}`" == f"`{type_}`", name
        assert default == f"`{block.attrs.get('default', 'null')}`", name


def test_pool_sizes_and_zone_are_checked_by_preconditions():
    pool = _by_kind("resource")["scaleway_k8s_pool"]
    (lifecycle,) = pool.children("lifecycle")
    assert lifecycle.attrs["create_before_destroy"] == "true"
    conditions = [p.attrs["condition"] for p in lifecycle.children("precondition")]
    assert any(
        "local.pool_min <= var.pool_size" in c and "<= local.pool_max" in c for c in conditions
    )
    assert any("local.zone" in c and "var.region" in c for c in conditions)
    assert any("var.pool_autoscaling" in c for c in conditions)


def _plan_variables(terraform: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``terraform plan`` on the stack's own variables.tf alone: validations only."""
    work = tmp_path / "vars"
    work.mkdir(exist_ok=True)
    shutil.copy(STACK / "variables.tf", work / "variables.tf")
    return tf(terraform, work, "plan", "-input=false", "-lock=false", *args)


@pytest.mark.parametrize(
    "args",
    [
        [],
        [
            "-var=name=shop",
            "-var=project_id=11111111-2222-3333-4444-555555555555",
            "-var=region=nl-ams",
            "-var=zone=nl-ams-2",
            "-var=cluster_type=kapsule-dedicated-8",
            "-var=kubernetes_version=1.35.3",
            "-var=cni=calico",
            "-var=node_type=gp1_xs",
            "-var=pool_size=0",
            "-var=pool_min_size=0",
            "-var=pool_max_size=5",
            "-var=pool_autoscaling=true",
            '-var=tags=["team=web","taint=dedicated=web:NoSchedule"]',
            "-var=private_network_id=nl-ams/bbbbbbbb-0000-4000-8000-000000000001",
            "-var=delete_additional_resources=true",
        ],
    ],
    ids=["defaults", "every-variable-set"],
)
def test_good_values_pass_the_validations(terraform_bin, tmp_path, args):
    result = _plan_variables(terraform_bin, tmp_path, *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("name", "Shop_1"),
        ("name", "x" * 41),
        ("project_id", "my-project"),
        ("region", "us-east-1"),
        ("zone", "fr-par-4"),
        ("cluster_type", "multicloud"),
        ("kubernetes_version", "v1.35.3"),
        ("cni", "weave"),
        ("node_type", "DEV1-S"),
        ("node_type", "stardust1_s"),
        ("node_type", "external"),
        ("pool_size", "1.5"),
        ("pool_size", "-1"),
        ("pool_min_size", "-1"),
        ("pool_max_size", "0"),
        ("pool_max_size", "2.5"),
        ("tags", '["ok", ""]'),
        ("tags", '[" padded"]'),
        ("private_network_id", "pn-1"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(terraform_bin, tmp_path, variable, value):
    result = _plan_variables(terraform_bin, tmp_path, f"-var={variable}={value}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Invalid value for variable" in result.stderr
    assert f'The variable "{variable}" must' in " ".join(result.stderr.split())


# ------------------------------------------------------------------ outputs
def test_outputs_are_the_readme_table_and_only_kubeconfig_is_sensitive():
    outputs = _by_kind("output")
    table = _readme_table("Outputs")
    assert list(table) == list(outputs)
    sensitive = {name for name, block in outputs.items() if block.attrs.get("sensitive") == "true"}
    assert sensitive == {"kubeconfig"}
    assert {name for name, cells in table.items() if cells[0] == "**yes**"} == {"kubeconfig"}
    for name, block in outputs.items():
        assert len(_string(block.attrs.get("description", '""'))) >= 20, name
        if name != "kubeconfig":
            # the provider marks `kubeconfig` sensitive: a plain output may not touch it
            assert ".kubeconfig" not in block.attrs["value"], name


def test_kubeconfig_output_is_built_from_the_cluster_kubeconfig_after_the_pool():
    kubeconfig = _by_kind("output")["kubeconfig"]
    value = kubeconfig.attrs["value"]
    assert value.startswith("yamlencode(")
    for attribute in ("host", "cluster_ca_certificate", "token"):
        assert f"{KUBECONFIG_REF}.{attribute}" in value, attribute
    assert kubeconfig.attrs.get("depends_on") == "[scaleway_k8s_pool.this]", (
        "must wait for the pool"
    )
    hint = _by_kind("output")["kubernetes_cluster"].attrs["value"]
    for key in ("context", "namespace", "kubeconfig_output"):
        assert re.search(rf"^\s*{key}\s*=", hint, re.M), key


def test_the_kubeconfig_expression_gives_a_kubeconfig_the_block_accepts(terraform_bin, tmp_path):
    """The output's own expression, with the cluster's attributes replaced by stand-ins,
    evaluated by Terraform (no provider), then handed to a KubernetesCluster block."""
    value = _by_kind("output")["kubeconfig"].attrs["value"]
    value = value.replace(KUBECONFIG_REF, "local.kc")
    assert "scaleway_" not in value, value
    work = tmp_path / "kubeconfig"
    work.mkdir()
    (work / "main.tf").write_text(
        "locals {\n"
        '  context = "shop"\n'
        "  kc = {\n"
        '    host                   = "https://c1.api.k8s.fr-par.scw.cloud:6443"\n'
        '    cluster_ca_certificate = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="\n'
        '    token                  = "stand-in-admin-token-1234"\n'
        "  }\n}\n\n"
        f'output "kubeconfig" {{\n  sensitive = true\n  value = {value}\n}}\n'
    )
    applied = tf(terraform_bin, work, "apply", "-input=false", "-auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "stand-in-admin-token" not in applied.stdout
    out = tf(terraform_bin, work, "output", "-raw", "kubeconfig")
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert config["current-context"] == "shop"
    assert config["clusters"][0]["cluster"] == {
        "server": "https://c1.api.k8s.fr-par.scw.cloud:6443",
        "certificate-authority-data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
    }
    assert config["users"][0]["user"] == {"token": "stand-in-admin-token-1234"}
    block = KubernetesCluster(kubeconfig=SecretStr(out.stdout), context="shop")
    assert block.namespace == "default"
    assert "stand-in-admin-token" not in repr(block)


# ------------------------------------------------------------------ with the provider
def require_scaleway_provider() -> None:
    from tests import testbed

    if "provider-scaleway" not in testbed.components():
        pytest.skip(
            "the test bed does not build the scaleway provider (tests/testbed/versions.toml "
            "has no [providers.scaleway]); stacks/kubernetes-cluster is checked by "
            "terraform fmt -check, its file contract and its variable validations only"
        )
    require_provider("scaleway")


def validate_and_test(terraform: str, cli_config: Path, work: Path) -> None:
    """``terraform init`` from the mirror in ``cli_config``, ``validate``, and the stack's
    own ``terraform test`` (mocked provider), in ``work`` (a copy of the stack)."""
    shutil.copytree(STACK, work)
    env = {"TF_CLI_CONFIG_FILE": str(cli_config)}
    for args in (["init", "-input=false"], ["validate"], ["test"]):
        result = tf(terraform, work, *args, **env)
        assert result.returncode == 0, f"terraform {args[0]}:\n{result.stdout}{result.stderr}"
    assert re.search(r"Success! [1-9]\d* passed, 0 failed", result.stdout), result.stdout


def test_validate_and_mocked_terraform_test_with_the_scaleway_provider(terraform_bin, tmp_path):
    require_scaleway_provider()
    from tests import testbed

    validate_and_test(terraform_bin, testbed.cli_config_path(), tmp_path / "stack")
