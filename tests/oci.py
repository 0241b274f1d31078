"""Images pushed straight through the registry API (no Docker engine): blobs by the
monolithic upload, then a manifest of any media type. Fast enough to push hundreds of
tags, and exact about what was pushed (the digest is the sha256 of the bytes PUT)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = {
    DOCKER_MANIFEST: "application/vnd.docker.container.image.v1+json",
    OCI_MANIFEST: "application/vnd.oci.image.config.v1+json",
}
LAYER_TYPE = {
    DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip",
    OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Pusher:
    """Pushes to ``http://<address>``; ``auth`` for a registry that wants a login."""

    address: str
    auth: tuple[str, str] | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://{self.address}", auth=self.auth, timeout=30)

    def blob(self, repository: str, data: bytes) -> dict:
        digest = sha256(data)
        with self.client() as c:
            start = c.post(f"/v2/{repository}/blobs/uploads/")
            assert start.status_code == 202, start.text
            location = start.headers["location"]
            sep = "&" if "?" in location else "?"
            done = c.put(
                f"{location}{sep}digest={digest}",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert done.status_code == 201, done.text
        return {"digest": digest, "size": len(data)}

    def manifest(self, repository: str, reference: str, body: dict, media_type: str) -> str:
        data = json.dumps(body, indent=3).encode()  # not canonical: the digest is of these bytes
        with self.client() as c:
            put = c.put(
                f"/v2/{repository}/manifests/{reference}",
                content=data,
                headers={"Content-Type": media_type},
            )
            assert put.status_code == 201, put.text
            assert put.headers["docker-content-digest"] == sha256(data)
        return sha256(data)

    def image(
        self,
        repository: str,
        tag: str,
        *,
        created: str = "2026-01-01T00:00:00Z",
        media_type: str = DOCKER_MANIFEST,
        label: str = "",
    ) -> str:
        """A one-layer linux/amd64 image; its manifest digest."""
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {"Labels": {"test": label or tag}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(os.urandom(8))]},
        }
        config_ref = self.blob(repository, json.dumps(config).encode())
        layer_ref = self.blob(repository, os.urandom(64))
        body = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": CONFIG_TYPE[media_type], **config_ref},
            "layers": [{"mediaType": LAYER_TYPE[media_type], **layer_ref}],
        }
        return self.manifest(repository, tag, body, media_type)

    def index(self, repository: str, tag: str, media_type: str = OCI_INDEX, **kw) -> str:
        """A multi-platform index over one linux/amd64 image; the index's digest."""
        child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
        child = self.image(repository, f"{tag}-amd64", media_type=child_type, **kw)
        with self.client() as c:
            size = len(c.get(f"/v2/{repository}/manifests/{child}", headers={
                "Accept": child_type}).content)  # fmt: skip
        body = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {
                    "mediaType": child_type,
                    "digest": child,
                    "size": size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
        return self.manifest(repository, tag, body, media_type)
