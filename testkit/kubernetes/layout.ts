/**
 * Where everything of one test cluster lives (folders, addresses, names) and the configuration
 * files of its parts. Pure: the cluster's start (cluster.ts) writes these and runs the processes.
 *
 * Network: one network namespace per cluster, and a veth pair from the host into it. With the
 * cluster's /16 being 10.B.0.0/16:
 *   10.B.0.1       host end of the veth (the test process reaches the cluster through it)
 *   10.B.0.2       kube-apiserver, and the cluster DNS on port 53 (etcd listens on the namespace's loopback only)
 *   10.B.0.11, .12 the nodes' IPs (kubelets listen there; the apiserver reaches them for logs/exec)
 *   10.B.(1+i).0/24 node i's pod subnet, on its own bridge cni<i> (CNI bridge + host-local)
 *   10.B.200.0/24  the service range (no kube-proxy runs: service IPs do not route)
 * The kubelet refuses a loopback node IP, which is why the namespace is needed at all
 * (the team's feasibility study of Kubernetes on this machine, section 3a).
 */
import path from 'node:path';

export const CLUSTER_DOMAIN = 'cluster.local';

export interface NodeLayout {
  name: string;
  ip: string;
  podSubnet: string;
  bridge: string;
  dir: string;
  containerdSocket: string;
  /** The kubelet's cgroupRoot: each node its own, so one kubelet never cleans up the other's pods. */
  cgroupRoot: string;
}

export interface ClusterLayout {
  id: string;
  dir: string;
  netns: string;
  hostVeth: string;
  nsVeth: string;
  octet: number;
  hostIp: string;
  apiIp: string;
  server: string;
  etcdDir: string;
  serviceRange: string;
  kubeconfig: string;
  token: string;
  nodes: NodeLayout[];
}

export function clusterLayout(o: { id: string; dir: string; octet: number; nodes: number; token: string }): ClusterLayout {
  const net = `10.${o.octet}`;
  return {
    id: o.id,
    dir: o.dir,
    netns: `linkflow-k8s-${o.id}`,
    // Interface names are at most 15 characters.
    hostVeth: `lfh${o.id}`.slice(0, 15),
    nsVeth: `lfn${o.id}`.slice(0, 15),
    octet: o.octet,
    hostIp: `${net}.0.1`,
    apiIp: `${net}.0.2`,
    server: `https://${net}.0.2:6443`,
    etcdDir: `/dev/shm/linkflow-k8s-${o.id}-etcd`,
    serviceRange: `${net}.200.0/24`,
    kubeconfig: path.join(o.dir, 'kubeconfig'),
    token: o.token,
    nodes: Array.from({ length: o.nodes }, (_, i) => {
      const name = `node-${i + 1}`;
      const dir = path.join(o.dir, 'nodes', name);
      return {
        name,
        ip: `${net}.0.${11 + i}`,
        podSubnet: `${net}.${1 + i}.0/24`,
        bridge: `cni${i}`,
        dir,
        containerdSocket: path.join(dir, 'containerd', 'containerd.sock'),
        cgroupRoot: `/linkflow-k8s-${o.id}-${name}`,
      };
    }),
  };
}

/** A kubeconfig (JSON is valid YAML) for kubectl, the components and @kubernetes/client-node. */
export function kubeconfig(layout: ClusterLayout): string {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'linkflow-test', cluster: { server: layout.server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'admin', user: { token: layout.token } }],
      contexts: [{ name: 'linkflow-test', context: { cluster: 'linkflow-test', user: 'admin', namespace: 'default' } }],
      'current-context': 'linkflow-test',
    },
    null,
    2,
  );
}

export function containerdConfig(node: NodeLayout, pauseImage: string): string {
  const d = (p: string) => JSON.stringify(path.join(node.dir, p));
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = ${d('containerd/root')}
state = ${d('containerd/state')}
[grpc]
  address = ${JSON.stringify(node.containerdSocket)}
[plugins."io.containerd.internal.v1.opt"]
  path = ${d('containerd/opt')}
[${cri}]
  sandbox_image = ${JSON.stringify(pauseImage)}
  # This sandbox's root lacks CAP_SYS_RESOURCE: runc fails to lower oom_score_adj to the kubelet's -998.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state folder, not /var/run/netns, so a killed node leaves none behind.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${d('containerd/runc')}
  [${cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${d('cni')}
`;
}

export function cniConfig(node: NodeLayout): string {
  return JSON.stringify({
    cniVersion: '0.4.0',
    name: `podnet-${node.name}`,
    plugins: [
      {
        type: 'bridge',
        bridge: node.bridge,
        isGateway: true,
        ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: node.podSubnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(node.dir, 'cni-ipam') },
      },
    ],
  });
}

/** KubeletConfiguration (JSON): the node's own addresses, cgroup root, log folder; status every second. */
export function kubeletConfig(node: NodeLayout, featureGates: Record<string, boolean>, dnsIp: string): string {
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // The machine has cgroup v1; kubelet 1.37 still runs on it when told so.
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: node.cgroupRoot,
      containerRuntimeEndpoint: `unix://${node.containerdSocket}`,
      address: node.ip,
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: node.ip,
      healthzPort: 10248,
      podLogsDir: path.join(node.dir, 'pod-logs'),
      authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
      authorization: { mode: 'AlwaysAllow' },
      failSwapOn: false,
      // Pods resolve cluster names through the cluster's own DNS (dns-server.ts) and nothing else: the
      // host's resolver stays out of them.
      resolvConf: '',
      clusterDNS: [dnsIp],
      clusterDomain: CLUSTER_DOMAIN,
      staticPodPath: '',
      serializeImagePulls: false,
      // A node whose kubelet dies is NotReady within seconds (with the controller-manager's grace period).
      nodeStatusUpdateFrequency: '1s',
      nodeStatusReportFrequency: '5s',
      nodeLeaseDurationSeconds: 4,
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      featureGates,
    },
    null,
    2,
  );
}
