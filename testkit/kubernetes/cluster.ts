/**
 * A real Kubernetes cluster on this machine for one test file: etcd (Debian's, on /dev/shm),
 * kube-apiserver, kube-scheduler and kube-controller-manager v1.37.2 (built by scripts/build-k8s.sh),
 * and N real kubelet nodes, each with its own containerd, CNI bridge, root folder and cgroup root,
 * all inside a network namespace made for this run. Each node advertises simulated NPUs
 * (`huawei.com/Ascend910: 8`, patched into its status). Native gang scheduling is on
 * (GenericWorkload: scheduling.k8s.io/v1beta1 PodGroup). The recipe follows the team's feasibility
 * study on this kind of machine (README, "Running on Kubernetes: the test cluster").
 *
 * stop() deletes the pods, stops everything, unmounts, removes the namespace and cgroups and
 * throws if anything is left. A run that dies first is cleaned up by its 'exit' handler or, failing
 * that, by the next cluster's start (teardown.ts).
 */
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { KubeApi, type KubeList, type KubeObject } from './api.ts';
import { ensureImages, importImages, type TestImages } from './images.ts';
import { alive, createCgroup, ip, spawnInNetns, usedTenOctets } from './host.ts';
import { CLUSTER_DOMAIN, clusterLayout, cniConfig, containerdConfig, kubeconfig, kubeletConfig, type ClusterLayout, type NodeLayout } from './layout.ts';
import { kubernetesBinDir, missingForKubernetes, REPO } from './requirements.ts';
import { claimOctet, killNodeProcesses, leftovers, reapAbandoned, saveRecord, teardown, type ClusterRecord } from './teardown.ts';
import { waitForNodes } from './nodes.ts';

const run = promisify(execFile);

export interface KubernetesClusterOptions {
  /** Kubelet nodes (default 2). */
  nodes?: number;
  /** The extended resource each node advertises (default huawei.com/Ascend910, as Ascend's device plugin names it). */
  npuResource?: string;
  npusPerNode?: number;
}

export interface KubernetesNode {
  name: string;
  ip: string;
  podSubnet: string;
  /** False once killNode() took it down. */
  alive: boolean;
}

export interface KubernetesCluster {
  id: string;
  dir: string;
  /** A kubeconfig file: the API server's address, a token, insecure-skip-tls-verify. */
  kubeconfig: string;
  server: string;
  token: string;
  api: KubeApi;
  nodes: KubernetesNode[];
  images: TestImages;
  npuResource: string;
  npusPerNode: number;
  /** kubectl (the machine's, a skew warning is fine) against this cluster; resolves to stdout. */
  kubectl(args: string[]): Promise<string>;
  /** Creates a namespace and waits for its default service account (pods are refused until it exists). */
  createNamespace(name: string): Promise<void>;
  /** Creates CustomResourceDefinitions (objects as parsed from YAML) and waits until they are served. */
  installCrds(crds: KubeObject[]): Promise<void>;
  /**
   * The node dies: its kubelet, its containerd, the shims and every process of its pods are
   * SIGKILLed. The node goes NotReady after the controller-manager's grace period (a few seconds).
   */
  killNode(name: string): void;
  /** The last lines of a component's log (etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kubelet-NODE, containerd-NODE). */
  log(component: string, lines?: number): string;
  /** What of the cluster is still on the host (empty after stop()). */
  leftovers(): string[];
  stop(): Promise<void>;
}

const FEATURE_GATES = { GenericWorkload: true };
const gates = Object.entries(FEATURE_GATES)
  .map(([k, v]) => `${k}=${v}`)
  .join(',');

export async function startKubernetesCluster(options: KubernetesClusterOptions = {}): Promise<KubernetesCluster> {
  const missing = missingForKubernetes();
  if (missing.length > 0) throw new Error(`cannot start a Kubernetes test cluster: missing ${missing.join(', ')} (.ci/run installs and builds them)`);
  reapAbandoned();
  const id = crypto.randomBytes(4).toString('hex').slice(0, 7);
  // On tmpfs: each node's containerd holds the images twice (content and unpacked snapshot), and
  // writing, then deleting, half a gigabyte on a busy disk took 9 s to start and 16 s to stop.
  const dir = fs.mkdtempSync(path.join(process.env.LINKFLOW_K8S_DIR ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()), `linkflow-k8s-${id}-`));
  const layout = clusterLayout({ id, dir, octet: claimFreeOctet(id), nodes: options.nodes ?? 2, token: crypto.randomBytes(16).toString('hex') });
  const record: ClusterRecord = {
    id,
    ownerPid: process.pid,
    dir,
    netns: layout.netns,
    hostVeth: layout.hostVeth,
    etcdDir: layout.etcdDir,
    octet: layout.octet,
    controlPlane: [],
    nodes: layout.nodes.map((n) => ({ name: n.name, dir: n.dir, containerdSocket: n.containerdSocket, cgroupRoot: n.cgroupRoot })),
  };
  saveRecord(record);
  const onExit = () => teardown(record);
  process.once('exit', onExit);
  const api = new KubeApi(layout.server, layout.token);
  const npuResource = options.npuResource ?? 'huawei.com/Ascend910';
  const npusPerNode = options.npusPerNode ?? 8;
  const logDir = path.join(dir, 'logs');
  const log = (component: string, lines = 40) => {
    const f = path.join(logDir, `${component}.log`);
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').slice(-lines).join('\n') : '';
  };
  let stopped = false;

  const cluster: KubernetesCluster = {
    id,
    dir,
    kubeconfig: layout.kubeconfig,
    server: layout.server,
    token: layout.token,
    api,
    nodes: layout.nodes.map((n) => ({ name: n.name, ip: n.ip, podSubnet: n.podSubnet, alive: true })),
    images: { pause: { ref: '', tar: '' }, python: { ref: '', tar: '' } },
    npuResource,
    npusPerNode,
    async kubectl(args) {
      return (await run('kubectl', ['--kubeconfig', layout.kubeconfig, ...args], { maxBuffer: 16 << 20 })).stdout;
    },
    async createNamespace(name) {
      await api.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
      await poll(
        `the default service account of namespace ${name}`,
        async () => (await api.find(`/api/v1/namespaces/${name}/serviceaccounts/default`)) !== undefined,
      );
    },
    async installCrds(crds) {
      for (const crd of crds) await api.create('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
      for (const crd of crds) await crdServed(api, crd);
    },
    killNode(name) {
      const node = record.nodes.find((n) => n.name === name);
      const view = cluster.nodes.find((n) => n.name === name);
      if (!node || !view) throw new Error(`no node ${name} in this cluster (${record.nodes.map((n) => n.name).join(', ')})`);
      killNodeProcesses(node);
      view.alive = false;
    },
    log,
    leftovers: () => leftovers(record),
    async stop() {
      if (stopped) return;
      stopped = true;
      await deletePods(api, cluster.nodes).catch(() => undefined);
      api.close();
      teardown(record);
      process.removeListener('exit', onExit);
      const left = leftovers(record);
      if (left.length > 0) throw new Error(`the Kubernetes test cluster ${id} left behind: ${left.join('; ')}`);
    },
  };

  try {
    const started = Date.now();
    setUpNetwork(layout);
    fs.mkdirSync(logDir, { recursive: true });
    writeCredentials(layout);
    const images = ensureImages();
    cluster.images = images;
    record.controlPlane.push(startEtcd(layout, logDir));
    for (const [i, node] of layout.nodes.entries()) {
      prepareNode(layout, i, images.pause.ref);
      record.nodes[i].containerd = spawnInNetns(
        layout.netns,
        ['containerd', '--config', path.join(node.dir, 'containerd.toml')],
        path.join(logDir, `containerd-${node.name}.log`),
      );
    }
    record.controlPlane.push(startApiserver(layout, logDir));
    saveRecord(record);
    const imported = Promise.all(
      layout.nodes.map(async (n) => {
        await poll(`containerd of ${n.name} to listen`, async () => fs.existsSync(n.containerdSocket), 15_000);
        await importImages(n.containerdSocket, images);
      }),
    );
    imported.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled
    await poll('kube-apiserver to be ready', async () => (await api.raw('GET', '/readyz').catch(() => ({ status: 0 }))).status === 200, 60_000);
    record.controlPlane.push(startScheduler(layout, logDir), startControllerManager(layout, logDir), startDns(layout, logDir));
    // The kubelets start once the images are imported: a kubelet starting while another node's containerd has an
    // import's temporary mount up can fail its ContainerManager ("failed to get rootfs info: cannot find filesystem
    // info for device …/containerd/root/tmpmounts/…", cadvisor reads every mount of the host) and exit.
    await imported;
    for (const [i, node] of layout.nodes.entries()) record.nodes[i].kubelet = startKubelet(layout, node, logDir);
    saveRecord(record);
    const names = layout.nodes.map((n) => n.name);
    // A kubelet whose ContainerManager failed at start exits: started again (a few times), as systemd would restart it.
    const restarts = new Map<string, number>();
    const revive = (name: string) => {
      const i = names.indexOf(name);
      const pid = record.nodes[i].kubelet;
      if (pid === undefined || alive(pid) || (restarts.get(name) ?? 0) >= 3) return;
      restarts.set(name, (restarts.get(name) ?? 0) + 1);
      record.nodes[i].kubelet = startKubelet(layout, layout.nodes[i], logDir);
      saveRecord(record);
    };
    await waitForNodes(api, names, npuResource, npusPerNode, 60_000, revive);
    await poll('the cluster DNS to serve', async () => log('dns').includes('dns: serving'), 20_000);
    await poll('the default service account', async () => (await api.find('/api/v1/namespaces/default/serviceaccounts/default')) !== undefined);
    fs.writeFileSync(path.join(dir, 'started-in-ms'), String(Date.now() - started));
    return cluster;
  } catch (err) {
    const tails = ['kube-apiserver', 'kube-controller-manager', ...layout.nodes.flatMap((n) => [`kubelet-${n.name}`, `containerd-${n.name}`])]
      .map((c) => `--- ${c}\n${log(c, 15)}`)
      .join('\n');
    await cluster.stop().catch(() => undefined);
    throw new Error(`the Kubernetes test cluster did not come up: ${(err as Error).message}\n${tails}`);
  }
}

/** A 10.x.0.0/16 that this host does not use and no other test cluster holds. */
function claimFreeOctet(id: string): number {
  const used = usedTenOctets();
  const candidates = Array.from({ length: 176 }, (_, i) => 64 + i).filter((o) => !used.has(o));
  for (let tries = 0; tries < candidates.length; tries++) {
    const octet = candidates[crypto.randomInt(candidates.length)];
    if (claimOctet(octet, id)) return octet;
  }
  throw new Error('no free 10.x.0.0/16 network for a test cluster (see /run/linkflow-k8s)');
}

function setUpNetwork(l: ClusterLayout): void {
  ip(['netns', 'add', l.netns]);
  ip(['-n', l.netns, 'link', 'set', 'lo', 'up']);
  ip(['link', 'add', l.hostVeth, 'type', 'veth', 'peer', 'name', l.nsVeth, 'netns', l.netns]);
  ip(['addr', 'add', `${l.hostIp}/24`, 'dev', l.hostVeth]);
  ip(['link', 'set', l.hostVeth, 'up']);
  for (const a of [l.apiIp, ...l.nodes.map((n) => n.ip)]) ip(['-n', l.netns, 'addr', 'add', `${a}/24`, 'dev', l.nsVeth]);
  ip(['-n', l.netns, 'link', 'set', l.nsVeth, 'up']);
  // Pod subnets reachable from the test process too (through the namespace, which routes between its bridges).
  ip(['route', 'add', `10.${l.octet}.0.0/16`, 'via', l.apiIp, 'dev', l.hostVeth]);
  spawnSync('nsenter', [`--net=/var/run/netns/${l.netns}`, '--', 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], { stdio: 'ignore' });
}

function writeCredentials(l: ClusterLayout): void {
  const pki = path.join(l.dir, 'pki');
  fs.mkdirSync(pki, { recursive: true });
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  fs.writeFileSync(path.join(pki, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(path.join(pki, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(path.join(pki, 'tokens.csv'), `${l.token},admin,admin,system:masters\n`, { mode: 0o600 });
  fs.writeFileSync(l.kubeconfig, kubeconfig(l), { mode: 0o600 });
}

function bin(name: string): string {
  return path.join(kubernetesBinDir(), name);
}

function startEtcd(l: ClusterLayout, logDir: string): number {
  fs.mkdirSync(l.etcdDir, { recursive: true, mode: 0o700 });
  const local = 'http://127.0.0.1';
  return spawnInNetns(
    l.netns,
    [
      'etcd',
      '--name=default',
      `--data-dir=${l.etcdDir}`,
      `--listen-client-urls=${local}:2379`,
      `--advertise-client-urls=${local}:2379`,
      `--listen-peer-urls=${local}:2380`,
      `--initial-advertise-peer-urls=${local}:2380`,
      `--initial-cluster=default=${local}:2380`,
      `--listen-metrics-urls=${local}:2381`,
    ],
    path.join(logDir, 'etcd.log'),
  );
}

function startApiserver(l: ClusterLayout, logDir: string): number {
  const pki = path.join(l.dir, 'pki');
  return spawnInNetns(
    l.netns,
    [
      bin('kube-apiserver'),
      '--etcd-servers=http://127.0.0.1:2379',
      `--bind-address=${l.apiIp}`,
      `--advertise-address=${l.apiIp}`,
      '--secure-port=6443',
      `--cert-dir=${pki}`,
      `--token-auth-file=${path.join(pki, 'tokens.csv')}`,
      '--authorization-mode=AlwaysAllow',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${path.join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(pki, 'sa.key')}`,
      `--service-cluster-ip-range=${l.serviceRange}`,
      '--allow-privileged=true',
      '--endpoint-reconciler-type=none',
      '--kubelet-preferred-address-types=InternalIP',
      `--feature-gates=${gates}`,
      '--runtime-config=scheduling.k8s.io/v1beta1=true',
    ],
    path.join(logDir, 'kube-apiserver.log'),
  );
}

function componentAuth(l: ClusterLayout): string[] {
  return [`--kubeconfig=${l.kubeconfig}`, `--authentication-kubeconfig=${l.kubeconfig}`, `--authorization-kubeconfig=${l.kubeconfig}`, '--leader-elect=false'];
}

function startScheduler(l: ClusterLayout, logDir: string): number {
  return spawnInNetns(
    l.netns,
    [bin('kube-scheduler'), ...componentAuth(l), '--bind-address=127.0.0.1', '--secure-port=10259', `--feature-gates=${gates}`],
    path.join(logDir, 'kube-scheduler.log'),
  );
}

function startControllerManager(l: ClusterLayout, logDir: string): number {
  const pki = path.join(l.dir, 'pki');
  return spawnInNetns(
    l.netns,
    [
      bin('kube-controller-manager'),
      ...componentAuth(l),
      '--bind-address=127.0.0.1',
      '--secure-port=10257',
      `--service-account-private-key-file=${path.join(pki, 'sa.key')}`,
      `--root-ca-file=${path.join(pki, 'apiserver.crt')}`,
      `--feature-gates=${gates}`,
      // A node whose kubelet stops answering is NotReady within seconds (kubelets renew their lease every second).
      '--node-monitor-period=1s',
      '--node-monitor-grace-period=6s',
    ],
    path.join(logDir, 'kube-controller-manager.log'),
  );
}

/** The cluster's DNS (dns-server.ts), where the kubelets point pods' resolv.conf. */
function startDns(l: ClusterLayout, logDir: string): number {
  const server = path.join(path.dirname(fileURLToPath(import.meta.url)), 'dns-server.ts');
  return spawnInNetns(l.netns, [process.execPath, '--import', 'tsx', server, l.apiIp, l.kubeconfig, CLUSTER_DOMAIN], path.join(logDir, 'dns.log'), {
    cwd: REPO,
  });
}

function prepareNode(l: ClusterLayout, i: number, pauseImage: string): void {
  const node = l.nodes[i];
  for (const d of ['containerd', 'cni', 'kubelet', 'pki', 'pod-logs']) fs.mkdirSync(path.join(node.dir, d), { recursive: true });
  fs.writeFileSync(path.join(node.dir, 'containerd.toml'), containerdConfig(node, pauseImage));
  fs.writeFileSync(path.join(node.dir, 'cni', '10-podnet.conflist'), cniConfig(node));
  fs.writeFileSync(path.join(node.dir, 'kubelet.json'), kubeletConfig(node, FEATURE_GATES, l.apiIp));
  createCgroup(node.cgroupRoot);
}

function startKubelet(l: ClusterLayout, node: NodeLayout, logDir: string): number {
  return spawnInNetns(
    l.netns,
    [
      bin('kubelet'),
      `--kubeconfig=${l.kubeconfig}`,
      `--config=${path.join(node.dir, 'kubelet.json')}`,
      `--root-dir=${path.join(node.dir, 'kubelet')}`,
      `--cert-dir=${path.join(node.dir, 'pki')}`,
      `--hostname-override=${node.name}`,
      `--node-ip=${node.ip}`,
    ],
    path.join(logDir, `kubelet-${node.name}.log`),
  );
}

/** Deletes every pod: gracefully where a kubelet still runs (it stops the containers), forcibly elsewhere. */
async function deletePods(api: KubeApi, nodes: KubernetesNode[]): Promise<void> {
  const live = new Set(nodes.filter((n) => n.alive).map((n) => n.name));
  const onLiveNode = (p: KubeObject) => live.has(String(p.spec?.nodeName ?? ''));
  // Controllers would create replacements while we delete.
  for (const kind of ['apis/batch/v1/jobs', 'apis/apps/v1/replicasets', 'apis/apps/v1/deployments', 'apis/apps/v1/statefulsets']) {
    const list = await api.get<KubeList>(`/${kind}`);
    for (const o of list.items)
      await api.delete(`/${kind.replace(/\/([a-z]+)$/, `/namespaces/${o.metadata.namespace}/$1`)}/${o.metadata.name}`, { propagationPolicy: 'Orphan' });
  }
  const pods = (await api.get<KubeList>('/api/v1/pods')).items;
  for (const p of pods) {
    await api.delete(`/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`, { gracePeriodSeconds: onLiveNode(p) ? 2 : 0 });
  }
  await poll('the pods to be gone', async () => (await api.get<KubeList>('/api/v1/pods')).items.filter(onLiveNode).length === 0, 40_000);
}

async function crdServed(api: KubeApi, crd: KubeObject): Promise<void> {
  const spec = crd.spec as { group: string; names: { plural: string }; versions: { name: string; served: boolean }[] };
  await poll(`CRD ${crd.metadata.name} to be established`, async () => {
    const got = await api.find(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
    const conditions = (got?.status?.conditions ?? []) as { type: string; status: string }[];
    return conditions.some((c) => c.type === 'Established' && c.status === 'True');
  });
  for (const v of spec.versions.filter((x) => x.served)) {
    await poll(`${spec.names.plural}.${spec.group}/${v.name} to be served`, async () => {
      const res = await api.raw('GET', `/apis/${spec.group}/${v.name}`);
      return res.status === 200 && (JSON.parse(res.body) as { resources: { name: string }[] }).resources.some((r) => r.name === spec.names.plural);
    });
  }
}

async function poll(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
