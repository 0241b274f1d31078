#!/usr/bin/env python3
"""Build the test bed from Go modules, once per machine (`make testbed`).

What it builds, pinned in versions.toml beside this file: a Kubernetes control plane
(kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), etcd, kwok and
kwokctl, helm, the Terraform providers (into a filesystem mirror with a CLI config that
never asks a registry) and terraform itself when none >= 1.4 is on PATH. Each component
lands in ``<cache>/<name>-<version>/`` (``<cache>`` is ``$PREFECT_STACKS_TESTBED``, default
``~/.cache/prefect-stacks/testbed``) with a ``.complete`` record; a second run, from any
clone, finds it and builds nothing.

Three providers the proxy refuses (403) are built from source vendored in the checkout
(``vendor/``, a ``source`` and ``sha256`` in versions.toml; their dependencies come from
the proxy). ``build.py vendor <provider> --from <git-dir>`` packs such an archive from a
snapshot of the provider's repository (vendor/README.md).

A build the Go proxy refuses is not fatal to the others: the component gets a
``.refused`` record (the go command and its last lines), the error is printed, and the
tests that need it say why they cannot run (tests/testbed/__init__.py reads the records).
The script exits non-zero only when it cannot try at all (no go) or a build fails for
another reason than a refused module (a vendored archive that does not match its sha256
is such a failure).

Standard library only: it runs before the virtualenv exists. Longer than 400 lines: one
build recipe per component kind (a wrapper module for Kubernetes, etcd, the providers;
go install for kwok and helm; terraform), which share the records, the go environment and
the error reports kept here; the vendored sources are in sources.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

if __package__:
    from . import sources
else:  # run as a script: python3 tests/testbed/build.py
    import sources

HERE = Path(__file__).resolve().parent
VERSIONS = HERE / "versions.toml"
GO_DIRECTIVE = "1.26.0"
PLATFORM = "linux_amd64"
TAIL_LINES = 15


def cache_root() -> Path:
    configured = os.environ.get("PREFECT_STACKS_TESTBED")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "prefect-stacks" / "testbed"


def load_versions() -> dict:
    with VERSIONS.open("rb") as fh:
        return tomllib.load(fh)


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Component:
    """One thing the test bed builds: where it lands and what it must contain."""

    name: str
    version: str
    directory: Path
    outputs: tuple[str, ...]  # paths relative to ``directory``
    installed: Path | None = None  # a provider's place in the mirror (a hard link)
    source_sha256: str | None = None  # a vendored source: the build must be of this one

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def path(self, output: str | None = None) -> Path:
        return self.directory / (output or self.outputs[0])

    @property
    def complete(self) -> bool:
        record = self.directory / ".complete"
        if not (
            record.exists()
            and all(self.path(o).is_file() for o in self.outputs)
            and (self.installed is None or self.installed.is_file())
        ):
            return False
        if self.source_sha256 is None:
            return True
        try:  # built from an older vendored archive: build again
            return json.loads(record.read_text()).get("source_sha256") == self.source_sha256
        except ValueError:
            return False

    @property
    def refusal(self) -> dict | None:
        record = self.directory / ".refused"
        if self.complete or not record.exists():
            return None
        return json.loads(record.read_text())


def provider_binary(name: str, version: str) -> str:
    return f"terraform-provider-{name}_v{version}"


def components(versions: dict | None = None, root: Path | None = None) -> dict[str, Component]:
    """Every component by name (providers as ``provider-<name>``), with its paths."""
    v = versions or load_versions()
    root = root or cache_root()
    kube = v["kubernetes"]["version"]
    found = {
        "kubernetes": Component(
            "kubernetes",
            kube,
            root / f"kubernetes-{kube}",
            tuple(
                f"bin/{b}"
                for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
            ),
        ),
        "etcd": Component(
            "etcd", v["etcd"]["version"], root / f"etcd-{v['etcd']['version']}", ("bin/etcd",)
        ),
        "kwok": Component(
            "kwok",
            v["kwok"]["version"],
            root / f"kwok-{v['kwok']['version']}",
            ("bin/kwokctl", "bin/kwok"),
        ),
        "helm": Component(
            "helm", v["helm"]["version"], root / f"helm-{v['helm']['version']}", ("bin/helm",)
        ),
        "terraform": Component(
            "terraform",
            v["terraform"]["version"],
            root / f"terraform-{v['terraform']['version']}",
            ("terraform",),
        ),
    }
    mirror = root / "providers"
    for name, spec in v["providers"].items():
        host, namespace, type_ = spec["address"].split("/")
        binary = provider_binary(type_, spec["version"])
        found[f"provider-{name}"] = Component(
            f"provider-{name}",
            spec["version"],
            root / f"provider-{name}-{spec['version']}",
            (binary,),
            mirror / host / namespace / type_ / spec["version"] / PLATFORM / binary,
            spec.get("sha256") if spec.get("source") else None,
        )
    return found


def mirror_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / "providers"


def cli_config_path(root: Path | None = None) -> Path:
    return mirror_dir(root) / "terraformrc"


def write_cli_config(root: Path | None = None) -> Path:
    """The Terraform CLI config for the mirror: no `direct {}`, so no registry is asked."""
    path = cli_config_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# written by tests/testbed/build.py: providers from the local mirror only\n"
        "disable_checkpoint = true\n"
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{mirror_dir(root)}"\n  }}\n'
        "}\n"
    )
    return path


# --------------------------------------------------------------------------- running go
class Refused(Exception):
    """The go command failed; ``proxy`` says whether the module proxy refused a module."""

    def __init__(
        self, command: list[str], output: str, workdir: Path, proxy: bool | None = None
    ) -> None:
        self.command = command
        self.tail = "\n".join(output.rstrip().splitlines()[-TAIL_LINES:])
        self.workdir = workdir
        self.proxy = refused_by_proxy(output) if proxy is None else proxy
        super().__init__(f"`{' '.join(command)}` failed in {workdir}:\n{self.tail}")


def refused_by_proxy(output: str) -> bool:
    return bool(
        re.search(r"403 Forbidden|not available|410 Gone|404 Not Found", output)
        or "unknown revision" in output
        or "Could not resolve host" in output
    )


def go(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "GOFLAGS": os.environ.get("GOFLAGS", "-buildvcs=false")}
    env.update(extra_env or {})
    command = ["go", *args]
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        try:  # `go mod download -json` reports in JSON: its Error is the message
            output = json.loads(proc.stdout)["Error"] + "\n" + proc.stderr
        except (ValueError, KeyError, TypeError):
            pass
        raise Refused(command, output, cwd)
    return proc.stdout


def upstream_gomod(module: str, version: str, cwd: Path, env: dict[str, str]) -> dict:
    """The module's own go.mod as `go mod edit -json` reads it (downloads the module)."""
    info = json.loads(go(["mod", "download", "-json", f"{module}@{version}"], cwd, env))
    return json.loads(go(["mod", "edit", "-json", info["GoMod"]], cwd, env))


def wrapper_module(
    src: Path,
    name: str,
    requires: dict[str, str],
    replaces: list[tuple[str, str]],
    godebug: list[str],
    imports: list[str],
    main_go: str | None = None,
    go_directive: str = GO_DIRECTIVE,
) -> None:
    """A module of our own that requires the upstream one, carrying the replace
    directives `go install` refuses to honour in a dependency."""
    src.mkdir(parents=True, exist_ok=True)
    lines = [f"module prefect-stacks/testbed/{name}", "", f"go {go_directive}", ""]
    lines += [f"godebug {d}" for d in godebug]
    lines += [f"require {m} {v}" for m, v in requires.items()]
    lines += [f"replace {old} => {new}" for old, new in replaces]
    (src / "go.mod").write_text("\n".join(lines) + "\n")
    (src / "go.sum").unlink(missing_ok=True)
    if main_go is not None:
        (src / "main.go").write_text(main_go)
    else:
        body = "".join(f'\t_ "{i}"\n' for i in imports)
        (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{body})\n")


def copied_replaces(gomod: dict) -> list[tuple[str, str]]:
    """The upstream go.mod's replace directives that point at other modules."""
    out = []
    for r in gomod.get("Replace") or []:
        old, new = r["Old"], r["New"]
        if not new.get("Version"):
            continue  # a local path: not in the module zip
        left = old["Path"] + (f" {old['Version']}" if old.get("Version") else "")
        out.append((left, f"{new['Path']} {new['Version']}"))
    return out


# --------------------------------------------------------------------------- builders
def build_kubernetes(c: Component, spec: dict, env: dict[str, str]) -> None:
    version = spec["version"]
    major, minor, patch = version.lstrip("v").split(".")
    src = c.directory / "src"
    src.mkdir(parents=True, exist_ok=True)
    upstream = upstream_gomod(spec["module"], version, src, env)
    staging_version = f"v0.{minor}.{patch}"
    replaces = []
    for r in upstream.get("Replace") or []:
        if r["New"]["Path"].startswith("./staging/"):
            replaces.append((r["Old"]["Path"], f"{r['Old']['Path']} {staging_version}"))
    replaces += copied_replaces(upstream)
    godebug = [f"{d['Key']}={d['Value']}" for d in upstream.get("Godebug") or []]
    commands = [f"k8s.io/kubernetes/cmd/{Path(o).name}" for o in c.outputs]
    wrapper_module(src, "kubernetes", {spec["module"]: version}, replaces, godebug, commands)
    go(["mod", "tidy"], src, env)
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={version}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            f"-X k8s.io/client-go/pkg/version.gitVersion={version}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
        ]
    )
    (c.directory / "bin").mkdir(exist_ok=True)
    out_dir = str(c.directory / "bin") + "/"
    go(["build", "-trimpath", "-ldflags", ldflags, "-o", out_dir, *commands], src, env)


ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def build_etcd(c: Component, spec: dict, env: dict[str, str]) -> None:
    src = c.directory / "src"
    wrapper_module(src, "etcd", {spec["module"]: spec["version"]}, [], [], [], ETCD_MAIN)
    go(["mod", "tidy"], src, env)
    go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(c.path()), "."], src, env)


def go_install(c: Component, packages: list[str], version: str, ldflags: str, env) -> None:
    bin_dir = c.path().parent
    bin_dir.mkdir(parents=True, exist_ok=True)
    for package in packages:
        go(
            ["install", "-trimpath", "-ldflags", ldflags, f"{package}@{version}"],
            c.directory,
            {**env, "GOBIN": str(bin_dir)},
        )


def build_kwok(c: Component, spec: dict, env: dict[str, str]) -> None:
    packages = [f"{spec['module']}/cmd/kwokctl", f"{spec['module']}/cmd/kwok"]
    go_install(c, packages, spec["version"], "-s -w", env)


def build_helm(c: Component, spec: dict, env: dict[str, str]) -> None:
    # What Helm's Makefile sets: its own version (else `helm version` says v3.22), and
    # the Kubernetes version `helm template` assumes without a cluster (else v1.20):
    # the test bed's.
    kube_major, kube_minor = spec["kube_version"].lstrip("v").split(".")[:2]
    chartutil = "helm.sh/helm/v3/pkg/chartutil"
    ldflags = (
        f"-s -w -X helm.sh/helm/v3/internal/version.version={spec['version']}"
        f" -X {chartutil}.k8sVersionMajor={kube_major} -X {chartutil}.k8sVersionMinor={kube_minor}"
    )
    go_install(c, [f"{spec['module']}/cmd/helm"], spec["version"], ldflags, env)


def build_terraform(c: Component, spec: dict, env: dict[str, str]) -> None:
    go_install(c, [spec["module"]], spec["version"], "-s -w", env)


def build_provider(c: Component, spec: dict, env: dict[str, str]) -> None:
    """A wrapper module that requires the provider (from the proxy, or from its vendored
    source through a local replace), with the upstream replace directives; one build
    with the ldflags of HashiCorp's release builds; a hard link into the mirror."""
    if spec.get("nosumdb"):
        env = {**env, "GONOSUMDB": spec["module"]}
    src = c.directory / "src"
    src.mkdir(parents=True, exist_ok=True)
    if spec.get("source"):
        module_dir = unpack_vendored(c, spec)
        env = {**env, "GOPROXY": proxy_only(src, env)}
        upstream = json.loads(go(["mod", "edit", "-json", str(module_dir / "go.mod")], src, env))
        requires = {spec["module"]: "v0.0.0"}
        replaces = [(spec["module"], f"../{module_dir.name}")]
        go_directive = upstream["Go"]  # as upstream builds it: the same GODEBUG defaults
    else:
        module_version = spec.get("module_version") or f"v{spec['version']}"
        upstream = upstream_gomod(spec["module"], module_version, src, env)
        requires, replaces, go_directive = {spec["module"]: module_version}, [], GO_DIRECTIVE
    godebug = [f"{d['Key']}={d['Value']}" for d in upstream.get("Godebug") or []]
    replaces += copied_replaces(upstream)
    wrapper_module(src, c.name, requires, replaces, godebug, [spec["module"]], None, go_directive)
    if spec.get("source"):  # upstream's checksums; tidy adds the few more the wrapper needs
        shutil.copyfile(module_dir / "go.sum", src / "go.sum")
    go(["mod", "tidy"], src, env)
    ldflags = f"-s -w -X main.Version={spec['version']}"  # a no-op where main has none
    go(["build", "-trimpath", "-ldflags", ldflags, "-o", str(c.path()), spec["module"]], src, env)
    install_into_mirror(c)


def unpack_vendored(c: Component, spec: dict) -> Path:
    """The provider's vendored source, checked against its sha256 and unpacked into the
    component's directory. A mismatch is a failure of the build, not a refusal."""
    archive = HERE / spec["source"]
    try:
        sources.verify(archive, spec["sha256"])
        return sources.unpack(archive, c.directory)
    except (sources.SourceError, tarfile.TarError, EOFError) as exc:
        raise Refused([f"verify and unpack {archive}"], str(exc), c.directory, proxy=False) from exc


def proxy_only(cwd: Path, env: dict[str, str]) -> str:
    """GOPROXY without `direct`: a vendored build reaches the module proxy and nothing
    else (a module the proxy lacks is then refused, not fetched from its origin; the
    checksum database is read through the proxy too). `off` when no proxy is set: then
    the module cache must hold every dependency."""
    configured = go(["env", "GOPROXY"], cwd, env).strip()
    kept = [p for p in re.split(r"[,|]", configured) if p and p not in ("direct", "off")]
    return ",".join(kept) or "off"


def install_into_mirror(c: Component) -> None:
    """The unpacked mirror layout, ``<host>/<namespace>/<type>/<version>/<os_arch>/``,
    holding the provider binary and nothing else (a hard link to the build)."""
    assert c.installed is not None
    c.installed.parent.mkdir(parents=True, exist_ok=True)
    c.installed.unlink(missing_ok=True)
    try:
        os.link(c.path(), c.installed)
    except OSError:
        shutil.copy2(c.path(), c.installed)


# --------------------------------------------------------------------------- terraform
def terraform_on_path(minimum: str) -> str | None:
    """The terraform on PATH when its version is >= ``minimum``, else None."""
    found = shutil.which("terraform")
    if not found:
        return None
    try:
        out = subprocess.run(
            [found, "version", "-json"], capture_output=True, text=True, timeout=60
        ).stdout
        version = json.loads(out)["terraform_version"]
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None
    have = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    need = tuple(int(x) for x in minimum.split(".")[:2])
    return found if have >= need else None


# --------------------------------------------------------------------------- main
@dataclass
class Outcome:
    built: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def say(line: str) -> None:
    print(f"testbed: {line}", flush=True)


def run_component(c: Component, builder, spec: dict, env: dict[str, str], outcome: Outcome) -> None:
    if c.complete:
        say(f"{c.label:<28} cached   {c.directory}")
        outcome.cached.append(c.name)
        return
    earlier = c.refusal
    how = "from its vendored source" if c.source_sha256 else "(once per machine)"
    if earlier:
        say(f"{c.label:<28} refused at {earlier['at']}; building {how} ...")
    else:
        say(f"{c.label:<28} building {how} ...")
    c.directory.mkdir(parents=True, exist_ok=True)
    # an earlier record never outlives this attempt: it ends with a new one
    (c.directory / ".refused").unlink(missing_ok=True)
    (c.directory / ".complete").unlink(missing_ok=True)
    started = time.monotonic()
    try:
        builder(c, spec, env)
    except Refused as exc:
        seconds = time.monotonic() - started
        record = {
            "component": c.label,
            "command": " ".join(exc.command),
            "workdir": str(exc.workdir),
            "tail": exc.tail,
            "proxy_refused": exc.proxy,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (c.directory / ".refused").write_text(json.dumps(record, indent=2) + "\n")
        kind = "REFUSED by the Go module proxy" if exc.proxy else "FAILED"
        say(f"{c.label:<28} {kind} after {seconds:.0f} s")
        print(f"  command: {record['command']}\n  in:      {exc.workdir}", flush=True)
        print("  " + exc.tail.replace("\n", "\n  "), flush=True)
        (outcome.refused if exc.proxy else outcome.failed).append(c.name)
        return
    missing = [o for o in c.outputs if not c.path(o).is_file()]
    if missing:
        say(f"{c.label:<28} FAILED: the build left no {', '.join(missing)}")
        outcome.failed.append(c.name)
        return
    seconds = time.monotonic() - started
    record = {"component": c.label, "seconds": round(seconds, 1)}
    if c.source_sha256:
        record["source_sha256"] = c.source_sha256
    (c.directory / ".complete").write_text(json.dumps(record) + "\n")
    say(f"{c.label:<28} built in {seconds:.0f} s")
    outcome.built.append(c.name)


def extra_path(versions: dict, found: dict[str, Component]) -> str:
    """Directories to append to PATH for the tests: the built terraform, when the
    machine has none that will do."""
    if terraform_on_path(versions["terraform"]["minimum"]) or not found["terraform"].complete:
        return ""
    return str(found["terraform"].directory)


def vendor(argv: list[str], versions: dict) -> int:
    """`build.py vendor <provider> --from <git-dir>`: pack the provider's release (the
    ``tag`` in versions.toml, which must point at its ``commit``) into its ``source``."""
    if len(argv) != 3 or argv[1] != "--from":
        print("usage: build.py vendor <provider> --from <git-dir>", file=sys.stderr)
        return 2
    name, git_dir = argv[0].removeprefix("provider-"), Path(argv[2])
    spec = versions["providers"].get(name, {})
    lacking = [k for k in ("source", "tag", "commit") if not spec.get(k)]
    if lacking:
        print(
            f"testbed: error: [providers.{name}] in {VERSIONS} has no {', '.join(lacking)}",
            file=sys.stderr,
        )
        return 2
    try:
        commit = sources.tag_commit(git_dir, spec["tag"])
        if commit != spec["commit"]:
            raise sources.SourceError(
                f"tag {spec['tag']} in {git_dir} is {commit}; versions.toml pins {spec['commit']}"
            )
        members = sources.collect(git_dir, commit)
    except sources.SourceError as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        return 1
    archive = HERE / spec["source"]
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(sources.pack(members, f"{Path(spec['module']).name}-{spec['version']}"))
    digest = sources.sha256(archive)
    say(f"{spec['source']}: {len(members)} files, {archive.stat().st_size} bytes")
    say(f'sha256 = "{digest}"')
    if digest != spec.get("sha256"):
        say(f"versions.toml pins {spec.get('sha256')}: put the sha256 above in [providers.{name}]")
    return 0


def main(argv: list[str]) -> int:
    versions = load_versions()
    if argv[:1] == ["vendor"]:
        return vendor(argv[1:], versions)
    root = cache_root()
    found = components(versions, root)
    if argv == ["--path"]:
        print(extra_path(versions, found))
        return 0
    kube = versions["kubernetes"]["version"]
    plan: list[tuple[Component, object, dict]] = [
        (found["kubernetes"], build_kubernetes, versions["kubernetes"]),
        (found["etcd"], build_etcd, versions["etcd"]),
        (found["kwok"], build_kwok, versions["kwok"]),
        (found["helm"], build_helm, {**versions["helm"], "kube_version": kube}),
    ]
    system_terraform = terraform_on_path(versions["terraform"]["minimum"])
    if system_terraform:
        say(f"{'terraform':<28} on PATH  {system_terraform}")
    else:
        plan.append((found["terraform"], build_terraform, versions["terraform"]))
    for name, spec in versions["providers"].items():
        plan.append((found[f"provider-{name}"], build_provider, spec))

    if not all(c.complete for c, _, _ in plan) and shutil.which("go") is None:
        todo = ", ".join(c.label for c, _, _ in plan if not c.complete)
        print(f"testbed: error: go is not on PATH; it is needed to build {todo}", file=sys.stderr)
        return 1
    env = {"GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local")}
    outcome = Outcome()
    started = time.monotonic()
    for component, builder, spec in plan:
        run_component(component, builder, spec, env, outcome)
    write_cli_config(root)
    say(
        f"done in {time.monotonic() - started:.0f} s: {len(outcome.built)} built, "
        f"{len(outcome.cached)} cached, {len(outcome.refused)} refused by the proxy"
        + (f" ({', '.join(outcome.refused)})" if outcome.refused else "")
        + (f", {len(outcome.failed)} FAILED ({', '.join(outcome.failed)})" * bool(outcome.failed))
    )
    say(f"terraform CLI config for the provider mirror: {cli_config_path(root)}")
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
