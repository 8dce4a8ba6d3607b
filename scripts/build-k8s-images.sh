#!/usr/bin/env bash
# Builds the test cluster's two container images locally (nothing is ever pulled) as docker-archive
# tarballs that testkit/kubernetes imports into each node's containerd:
#   pause   busybox-static and a trap loop: the kubelet's sandbox image.
#   python  Debian bookworm (debootstrap --variant=minbase from the machine's apt mirror) with `python3`
#           (python3-minimal lacks modules the emulator imports, argparse and logging among them).
# The emulator and the workspace reach pods through hostPath volumes, so the images carry no linkflow
# code and are rebuilt only when their inputs change: each tarball's name holds a hash of those
# inputs (this script, mkimage.py, busybox's version, the suite and the mirror). They are cached in
# ${LINKFLOW_K8S_IMAGES:-~/.cache/linkflow/k8s-images}, shared by every checkout on the machine.
# The first python build takes about 2 minutes; a cached run, well under a second.
# The last line printed is JSON: {"pause": {"ref", "tar"}, "python": {"ref", "tar"}}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${LINKFLOW_K8S_IMAGES:-$HOME/.cache/linkflow/k8s-images}"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
suite=bookworm
# The first deb.debian.org-style URI of the machine's own apt sources (deb822 or one-line format).
mirror=$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'; } |
    grep -v security | head -1 || true
)
mirror=${mirror:-http://deb.debian.org/debian}
busybox=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo none)
inputs=$(cat "$0" "$here/mkimage.py"; echo "$suite $mirror $busybox")
key=$(printf '%s' "$inputs" | sha256sum | cut -c1-16)
pause_ref="linkflow.local/pause:$key"
python_ref="linkflow.local/python:3.11-$key"
pause_tar="$out/pause-$key.tar"
python_tar="$out/python-$key.tar"
work=$(mktemp -d "$out/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT

busybox_rootfs() {
  local root=$1
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/root"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
}

if [ ! -f "$pause_tar" ]; then
  start=$(date +%s)
  [ -x /bin/busybox ] || { echo "build-k8s-images: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
  busybox_rootfs "$work/pause"
  python3 "$here/mkimage.py" "$work/pause" "$pause_ref" "$pause_tar" \
    --entrypoint '["/bin/sh","-c","trap \"exit 0\" TERM INT; while true; do sleep 3600 & wait $!; done"]'
  echo "k8s images: pause built in $(($(date +%s) - start)) s" >&2
fi

if [ ! -f "$python_tar" ]; then
  start=$(date +%s)
  command -v debootstrap >/dev/null || { echo "build-k8s-images: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
  echo "k8s images: debootstrap $suite from $mirror (about 2 minutes, once)" >&2
  debootstrap --variant=minbase --include=python3 "$suite" "$work/python" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/python"/usr/share/{doc,man,info,locale} "$work/python"/var/cache/apt/* "$work/python"/var/lib/apt/lists/*
  python3 "$here/mkimage.py" "$work/python" "$python_ref" "$python_tar" --cmd '["python3"]' --env PYTHONUNBUFFERED=1
  echo "k8s images: python built in $(($(date +%s) - start)) s ($(du -m "$python_tar" | cut -f1) MB)" >&2
fi

# Older builds of these images are stale once an input changed (kept a week: another checkout may still use them).
find "$out" -maxdepth 1 -name '*.tar' ! -name "pause-$key.tar" ! -name "python-$key.tar" -mtime +7 -delete
printf '{"pause":{"ref":"%s","tar":"%s"},"python":{"ref":"%s","tar":"%s"}}\n' "$pause_ref" "$pause_tar" "$python_ref" "$python_tar"
