/** A real Kubernetes cluster for tests (cluster.ts), its API client, and what it needs on the machine. */
export { startKubernetesCluster, type KubernetesCluster, type KubernetesClusterOptions, type KubernetesNode } from './cluster.ts';
export { KubeApi, KubeApiError, type KubeList, type KubeObject } from './api.ts';
export { kubernetesAvailable, kubernetesBinDir, missingForKubernetes } from './requirements.ts';
export { nodeAllocatable, nodeReady } from './nodes.ts';
export { referenceCrds } from './crds.ts';
export type { TestImages } from './images.ts';
