/**
 * Starts the test Kubernetes cluster by hand, for development: the same cluster the tests start
 * (testkit/kubernetes), kept up until Ctrl-C, then stopped without a trace.
 *
 *   node --import tsx scripts/k8s-cluster.ts [--nodes N] [--npus N]
 *   export KUBECONFIG=<the path it prints>; kubectl get nodes
 */
import { parseArgs } from 'node:util';
import { missingForKubernetes, startKubernetesCluster } from '../testkit/kubernetes/index.ts';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '2' }, npus: { type: 'string', default: '8' } } });
const missing = missingForKubernetes();
if (missing.length > 0) {
  console.error(`cannot start the cluster: missing ${missing.join(', ')}`);
  process.exit(1);
}
const started = Date.now();
const cluster = await startKubernetesCluster({ nodes: Number(values.nodes), npusPerNode: Number(values.npus) });
console.log(`cluster ${cluster.id} up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`  export KUBECONFIG=${cluster.kubeconfig}`);
console.log(`  API server ${cluster.server}; nodes ${cluster.nodes.map((n) => `${n.name} (${n.ip})`).join(', ')}`);
console.log(`  images: ${cluster.images.python.ref}, ${cluster.images.pause.ref} (imagePullPolicy: Never)`);
console.log(`  logs: ${cluster.dir}/logs; Ctrl-C stops it`);
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log('stopping…');
    cluster.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error((err as Error).message);
        process.exit(1);
      },
    );
  });
}
setInterval(() => undefined, 1 << 30);
