#!/usr/bin/env python3
"""Packs a root file system folder into a docker-archive tarball (one uncompressed layer).

The test cluster's kubelets cannot pull images (no registry is reachable), so testkit/kubernetes
imports tarballs made here with `ctr -n k8s.io images import`. The docker-archive layout that
containerd's importer reads: manifest.json ([{Config, RepoTags, Layers}]), the image config named by
the sha256 of its bytes, and each layer as a plain tar whose sha256 is the config's diff_id.

usage: mkimage.py ROOTFS REF OUT.tar [--entrypoint JSON] [--cmd JSON] [--env K=V ...]
"""

import argparse
import hashlib
import json
import os
import tarfile
import tempfile

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pack_layer(rootfs: str, out) -> str:
    """Writes the layer tar of everything under rootfs (owners and modes kept); returns its diff_id."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name)
    out.flush()
    out.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: out.read(1 << 20), b""):
        digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, fileobj=_Reader(data))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rootfs")
    parser.add_argument("ref", help="the image reference (name:tag) the tarball carries")
    parser.add_argument("out")
    parser.add_argument("--entrypoint", type=json.loads, default=None)
    parser.add_argument("--cmd", type=json.loads, default=None)
    parser.add_argument("--env", action="append", default=[])
    args = parser.parse_args()

    with tempfile.TemporaryFile() as layer:
        diff_id = pack_layer(args.rootfs, layer)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [PATH, *args.env], "Entrypoint": args.entrypoint, "Cmd": args.cmd, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        manifest = [{"Config": config_name, "RepoTags": [args.ref], "Layers": ["layer.tar"]}]
        tmp = args.out + ".part"
        with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
            add_bytes(tar, config_name, config_bytes)
            layer.seek(0, os.SEEK_END)
            info = tarfile.TarInfo("layer.tar")
            info.size = layer.tell()
            info.mode = 0o644
            layer.seek(0)
            tar.addfile(info, fileobj=layer)
            add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
