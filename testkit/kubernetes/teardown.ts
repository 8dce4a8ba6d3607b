/**
 * What a test cluster holds on the host, written down before anything starts (/run/linkflow-k8s,
 * a tmpfs), so its teardown can run from the test's own stop(), from an 'exit' handler, or from the
 * next cluster's start when the process that owned it died (SIGKILL, a crashed vitest worker).
 * teardown() is synchronous and idempotent; leftovers() says what is still there.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  alive,
  cgroupDirs,
  ip,
  killCgroup,
  killGroup,
  linkExists,
  mountsUnder,
  netnsExists,
  pidsInCgroup,
  pidsWithArgument,
  removeCgroup,
  stopGroup,
  unmountUnder,
} from './host.ts';

export const REGISTRY = '/run/linkflow-k8s';
const CONTAINER_LOGS = '/var/log/containers';
const DEVICE_PLUGINS = '/var/lib/kubelet/device-plugins';

export interface NodeRecord {
  name: string;
  dir: string;
  containerdSocket: string;
  cgroupRoot: string;
  containerd?: number;
  kubelet?: number;
}

export interface ClusterRecord {
  id: string;
  ownerPid: number;
  dir: string;
  netns: string;
  hostVeth: string;
  etcdDir: string;
  octet: number;
  /** Process groups of the control plane, in start order (etcd, apiserver, scheduler, controller-manager). */
  controlPlane: number[];
  nodes: NodeRecord[];
}

function recordPath(id: string): string {
  return path.join(REGISTRY, `${id}.json`);
}

function octetLock(octet: number): string {
  return path.join(REGISTRY, `net-${octet}`);
}

export function saveRecord(record: ClusterRecord): void {
  fs.mkdirSync(REGISTRY, { recursive: true });
  fs.writeFileSync(recordPath(record.id) + '.part', JSON.stringify(record));
  fs.renameSync(recordPath(record.id) + '.part', recordPath(record.id));
}

/** Claims 10.octet.0.0/16 for this run (mkdir is atomic); false when another run holds it. */
export function claimOctet(octet: number, id: string): boolean {
  for (let tries = 0; ; tries++) {
    fs.mkdirSync(REGISTRY, { recursive: true });
    try {
      fs.mkdirSync(octetLock(octet));
      break;
    } catch (err) {
      // ENOENT: the last cluster's teardown removed the empty registry meanwhile.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || tries > 2) return false;
    }
  }
  fs.writeFileSync(path.join(octetLock(octet), 'owner'), id);
  return true;
}

function releaseOctet(octet: number, id: string): void {
  try {
    if (fs.readFileSync(path.join(octetLock(octet), 'owner'), 'utf8') === id) fs.rmSync(octetLock(octet), { recursive: true, force: true });
  } catch {
    // not ours, or gone
  }
}

/** Tears down the clusters whose owning process is gone (a run that was killed before its cleanup). */
export function reapAbandoned(): string[] {
  const reaped: string[] = [];
  let files: string[] = [];
  try {
    files = fs.readdirSync(REGISTRY).filter((f) => f.endsWith('.json'));
  } catch {
    return reaped;
  }
  for (const f of files) {
    let record: ClusterRecord;
    try {
      record = JSON.parse(fs.readFileSync(path.join(REGISTRY, f), 'utf8')) as ClusterRecord;
    } catch {
      continue;
    }
    if (alive(record.ownerPid)) continue;
    teardown(record);
    reaped.push(record.id);
  }
  return reaped;
}

/** Kills one node as a machine that died: its kubelet, its containerd, the shims and every process of its pods. */
export function killNodeProcesses(node: NodeRecord): void {
  if (node.kubelet !== undefined) killGroup(node.kubelet);
  if (node.containerd !== undefined) killGroup(node.containerd);
  // containerd starts each shim in its own process group: they name their containerd's socket.
  for (const pid of pidsWithArgument(node.containerdSocket)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  killCgroup(node.cgroupRoot);
}

/** Stops and removes everything of the cluster on the host; safe to call more than once. */
export function teardown(record: ClusterRecord): void {
  for (const node of record.nodes) if (node.kubelet !== undefined) stopGroup(node.kubelet, 5_000);
  const shimSockets = record.nodes.flatMap((n) => shimSocketsOf(n));
  for (const node of record.nodes) {
    killNodeProcesses({ ...node, kubelet: undefined, containerd: undefined });
    if (node.containerd !== undefined) stopGroup(node.containerd, 5_000);
  }
  for (const pgid of [...record.controlPlane].reverse()) stopGroup(pgid, 15_000);
  unmountUnder(record.dir);
  for (const node of record.nodes) removeCgroup(node.cgroupRoot);
  if (netnsExists(record.netns)) {
    try {
      ip(['netns', 'del', record.netns]);
    } catch {
      // reported by leftovers()
    }
  }
  if (linkExists(record.hostVeth)) {
    try {
      ip(['link', 'del', record.hostVeth]);
    } catch {
      // reported by leftovers()
    }
  }
  for (const s of shimSockets) fs.rmSync(s, { force: true });
  removeContainerLogLinks(record.dir);
  if (mountsUnder(record.dir).length === 0) fs.rmSync(record.dir, { recursive: true, force: true });
  fs.rmSync(record.etcdDir, { recursive: true, force: true });
  releaseOctet(record.octet, record.id);
  fs.rmSync(recordPath(record.id), { force: true });
  removeSharedHostDirs();
}

/** What of the cluster is still on the host: processes, mounts, the namespace, veth, cgroups, folders. */
export function leftovers(record: ClusterRecord): string[] {
  const found: string[] = [];
  for (const pid of new Set([...pidsWithArgument(record.dir), ...pidsWithArgument(record.etcdDir)])) found.push(`process ${pid}`);
  for (const node of record.nodes) {
    for (const pid of pidsInCgroup(node.cgroupRoot)) found.push(`process ${pid} in cgroup ${node.cgroupRoot}`);
    for (const dir of cgroupDirs(node.cgroupRoot)) found.push(`cgroup ${dir}`);
  }
  for (const m of mountsUnder(record.dir)) found.push(`mount ${m}`);
  if (netnsExists(record.netns)) found.push(`network namespace ${record.netns}`);
  if (linkExists(record.hostVeth)) found.push(`link ${record.hostVeth}`);
  for (const p of [record.dir, record.etcdDir, recordPath(record.id)]) if (fs.existsSync(p)) found.push(`path ${p}`);
  return found;
}

/** Each task's bundle records its shim's socket (under /run/containerd/s, shared by every containerd). */
function shimSocketsOf(node: NodeRecord): string[] {
  const tasks = path.join(node.dir, 'containerd', 'state', 'io.containerd.runtime.v2.task');
  const sockets: string[] = [];
  try {
    for (const ns of fs.readdirSync(tasks)) {
      for (const id of fs.readdirSync(path.join(tasks, ns))) {
        try {
          const address = fs.readFileSync(path.join(tasks, ns, id, 'address'), 'utf8').trim();
          if (address.startsWith('unix://')) sockets.push(address.slice('unix://'.length));
        } catch {
          // no address file
        }
      }
    }
  } catch {
    // no tasks
  }
  return sockets;
}

/** The kubelet links every container's log into /var/log/containers (a fixed path): remove the links into this cluster. */
function removeContainerLogLinks(dir: string): void {
  try {
    for (const f of fs.readdirSync(CONTAINER_LOGS)) {
      const link = path.join(CONTAINER_LOGS, f);
      try {
        if (fs.readlinkSync(link).startsWith(dir + '/')) fs.rmSync(link, { force: true });
      } catch {
        // not a link
      }
    }
  } catch {
    // no such folder
  }
}

/**
 * Paths every cluster shares, whatever its own folders: the kubelet's device manager listens on a
 * fixed path (/var/lib/kubelet/device-plugins/kubelet.sock; no device plugin registers here), and
 * containerd puts its shims' sockets under /run/containerd/s. Removed once no test cluster is left:
 * only the files the kubelet writes there, and folders only when empty.
 */
function removeSharedHostDirs(): void {
  try {
    if (fs.readdirSync(REGISTRY).some((f) => f.endsWith('.json'))) return;
  } catch {
    // no registry: no cluster
  }
  for (const f of ['kubelet.sock', 'kubelet_internal_checkpoint']) fs.rmSync(path.join(DEVICE_PLUGINS, f), { force: true });
  for (const d of [DEVICE_PLUGINS, path.dirname(DEVICE_PLUGINS), '/run/containerd/s', '/run/containerd', REGISTRY]) {
    try {
      fs.rmdirSync(d);
    } catch {
      // not empty, or not there
    }
  }
}
