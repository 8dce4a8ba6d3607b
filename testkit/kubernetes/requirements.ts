/**
 * What a test cluster needs on this machine: the Kubernetes binaries scripts/build-k8s.sh builds, and
 * Debian's etcd, containerd, runc, CNI plugins, busybox-static and debootstrap (.ci/run installs them),
 * plus root (network namespaces, mounts, cgroups). Tests skip outside CI when something is missing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KUBERNETES_BINARIES = ['kube-apiserver', 'kube-scheduler', 'kube-controller-manager', 'kubelet'];
const COMMANDS = ['etcd', 'containerd', 'containerd-shim-runc-v2', 'ctr', 'runc', 'nsenter', 'ip', 'debootstrap'];
const FILES = ['/usr/lib/cni/bridge', '/usr/lib/cni/host-local', '/bin/busybox'];

/** LINKFLOW_K8S_BIN, or the checkout's .linkflow/k8s/bin (where scripts/build-k8s.sh puts them). */
export function kubernetesBinDir(): string {
  return process.env.LINKFLOW_K8S_BIN ?? path.join(REPO, '.linkflow', 'k8s', 'bin');
}

function onPath(cmd: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  return dirs.some((d) => d && fs.existsSync(path.join(d, cmd)));
}

/** What is missing for a test cluster (empty when one can start). */
export function missingForKubernetes(): string[] {
  const missing = [
    ...KUBERNETES_BINARIES.filter((b) => !fs.existsSync(path.join(kubernetesBinDir(), b))).map((b) => `${b} (bash scripts/build-k8s.sh)`),
    ...COMMANDS.filter((c) => !onPath(c)),
    ...FILES.filter((f) => !fs.existsSync(f)),
  ];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces, mounts and cgroups)');
  return missing;
}

/** Whether this machine can start a test cluster (tests skip outside CI when it cannot). */
export function kubernetesAvailable(): boolean {
  return missingForKubernetes().length === 0;
}
