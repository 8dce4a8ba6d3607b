/**
 * A real Kubernetes cluster for tests (cluster.ts), its API client, and what it needs on the machine.
 *
 *   const cluster = await startKubernetesCluster({ nodes: 3 });   // skip with kubernetesAvailable()
 *   ... cluster.kubeconfig, cluster.api, cluster.images.python.ref, cluster.killNode('node-2')
 *   await cluster.stop();                                          // throws if anything is left
 *
 * What pods can count on (and what a test must know):
 * - Images are never pulled: use `cluster.images.python.ref` (Debian's python3 3.11, the full
 *   standard library) with `imagePullPolicy: Never` or `IfNotPresent`. linkflow's code is not in it:
 *   mount the repository's emulator/ and the workspace with hostPath volumes (every node is this
 *   machine, so a host path means the same files on every node).
 * - Nodes are node-1..node-N, each with `npusPerNode` of `npuResource` (huawei.com/Ascend910: 8).
 * - Pods resolve cluster names (`<pod hostname>.<headless service>.<ns>.svc.cluster.local`, a service
 *   name, `<a-b-c-d>.<ns>.pod.cluster.local`) through the cluster's DNS; nothing outside resolves
 *   or routes. No kube-proxy runs: a ClusterIP resolves but does not route, so ranks reach each
 *   other through a headless Service (pod IPs route between nodes).
 * - Native gang scheduling: `scheduling.k8s.io/v1beta1` PodGroup (`spec.schedulingPolicy.gang.minCount`)
 *   and `spec.schedulingGroup.podGroupName` on each pod.
 * - `killNode` SIGKILLs the node's kubelet, containerd, shims and pod processes; about 6 s later the
 *   node's Ready condition is Unknown (NodeStatusUnknown) and it carries the node.kubernetes.io/unreachable
 *   taints. Its pods stay phase Running with condition Ready=False until the taint manager evicts them
 *   (the default 300 s toleration), and a graceful delete of them never completes (no kubelet
 *   confirms it): delete them with gracePeriodSeconds 0, as an operator does for a lost node.
 * - Volcano's Job and PodGroup and MindCluster's AscendJob exist only as CRDs (`installCrds(referenceCrds())`),
 *   for server-side dry runs: nothing runs their objects.
 */
export { startKubernetesCluster, type KubernetesCluster, type KubernetesClusterOptions, type KubernetesNode } from './cluster.ts';
export { KubeApi, KubeApiError, type KubeList, type KubeObject } from './api.ts';
export { kubernetesAvailable, kubernetesBinDir, missingForKubernetes } from './requirements.ts';
export { nodeAllocatable, nodeReady } from './nodes.ts';
export { referenceCrds, REFERENCE_CRD_DIR } from './crds.ts';
export type { TestImages } from './images.ts';
