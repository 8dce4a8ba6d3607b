#!/usr/bin/env bash
# Builds kube-apiserver, kube-scheduler, kube-controller-manager and kubelet v1.37.2 from the Go module
# proxy (tools/k8s pins them) into .linkflow/k8s/bin. Go's caches stay at their default paths, so the first
# build (about 36 min on one core) warms them and later ones take seconds. Skips binaries already built
# from the same go.sum.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${LINKFLOW_K8S_BIN:-$PWD/.linkflow/k8s/bin}"
mkdir -p "$out"
stamp="$out/.go.sum.sha256"
want=$(sha256sum tools/k8s/go.sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
  [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-scheduler" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/kubelet" ]; then
  echo "kubernetes: binaries in $out are current"
  exit 0
fi
V=v1.37.2
LD="-s -w -X k8s.io/component-base/version.gitVersion=$V -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/client-go/pkg/version.gitVersion=$V"
cd tools/k8s
for cmd in kube-apiserver kube-scheduler kube-controller-manager kubelet; do
  start=$(date +%s)
  echo "kubernetes: building $cmd (the first build takes long; later builds reuse Go's cache)"
  nice -n 10 go build -trimpath -ldflags "$LD" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  echo "kubernetes: $cmd built in $(($(date +%s) - start)) s"
done
echo "$want" >"$stamp"
