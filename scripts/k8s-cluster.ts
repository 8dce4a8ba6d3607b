/**
 * Starts the test Kubernetes cluster by hand, for development: the same cluster the tests start
 * (testkit/kubernetes), kept up until Ctrl-C, then stopped without a trace.
 *
 *   node --import tsx scripts/k8s-cluster.ts [--nodes N] [--npus N]
 *   export KUBECONFIG=<the path it prints>; kubectl get nodes
 *   node --import tsx scripts/k8s-cluster.ts --reap   # removes test clusters whose process died
 */
import { parseArgs } from 'node:util';
import { missingForKubernetes, startKubernetesCluster, type KubernetesCluster } from '../testkit/kubernetes/index.ts';
import { reapAbandoned } from '../testkit/kubernetes/teardown.ts';

const { values } = parseArgs({
  options: { nodes: { type: 'string', default: '2' }, npus: { type: 'string', default: '8' }, reap: { type: 'boolean', default: false } },
});
if (values.reap) {
  const reaped = reapAbandoned();
  console.log(reaped.length > 0 ? `removed test clusters ${reaped.join(', ')}` : 'no abandoned test cluster');
  process.exit(0);
}
const missing = missingForKubernetes();
if (missing.length > 0) {
  console.error(`cannot start the cluster: missing ${missing.join(', ')}`);
  process.exit(1);
}
let stopping = false;
const up: { cluster?: KubernetesCluster } = {};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    // Still starting: exiting runs the cluster's own 'exit' handler, which tears down what is up.
    if (!up.cluster) process.exit(130);
    console.log('stopping…');
    up.cluster.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error((err as Error).message);
        process.exit(1);
      },
    );
  });
}
const started = Date.now();
const cluster = await startKubernetesCluster({ nodes: Number(values.nodes), npusPerNode: Number(values.npus) });
up.cluster = cluster;
console.log(`cluster ${cluster.id} up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`  export KUBECONFIG=${cluster.kubeconfig}`);
console.log(`  API server ${cluster.server}; nodes ${cluster.nodes.map((n) => `${n.name} (${n.ip})`).join(', ')}`);
console.log(`  images: ${cluster.images.python.ref}, ${cluster.images.pause.ref} (imagePullPolicy: Never)`);
console.log(`  logs: ${cluster.dir}/logs; Ctrl-C stops it`);
setInterval(() => undefined, 1 << 30);
