/**
 * The test cluster's DNS server process (the cluster starts it in its network namespace, as a
 * cluster runs CoreDNS): UDP on port 53 of the address the kubelets give pods as their nameserver,
 * answered from the API server's services and EndpointSlices (dns.ts).
 *
 *   node --import tsx testkit/kubernetes/dns-server.ts LISTEN_IP KUBECONFIG [DOMAIN]
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import { KubeApi, type KubeList, type KubeObject } from './api.ts';
import { decodeQuery, encodeAnswer, formatError, namespaceOf, resolve, type EndpointView, type NamespaceView } from './dns.ts';

const [listen, kubeconfigPath, domain = 'cluster.local'] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(kubeconfigPath, 'utf8')) as {
  clusters: { cluster: { server: string } }[];
  users: { user: { token: string } }[];
};
const api = new KubeApi(config.clusters[0].cluster.server, config.users[0].user.token);

interface Slice extends KubeObject {
  endpoints?: { addresses: string[]; hostname?: string; conditions?: { ready?: boolean } }[];
}

const cache = new Map<string, { at: number; view: Promise<NamespaceView> }>();

/** A namespace's services and endpoints, read at most every half second. */
function viewOf(namespace: string): Promise<NamespaceView> {
  const hit = cache.get(namespace);
  if (hit && Date.now() - hit.at < 500) return hit.view;
  const view = (async () => {
    const [services, slices] = await Promise.all([
      api.get<KubeList>(`/api/v1/namespaces/${namespace}/services`),
      api.get<KubeList<Slice>>(`/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`),
    ]);
    const endpoints: EndpointView[] = slices.items.flatMap((s) =>
      (s.endpoints ?? []).flatMap((e) =>
        e.addresses.map((ip) => ({
          service: s.metadata.labels?.['kubernetes.io/service-name'] ?? '',
          ip,
          hostname: e.hostname,
          ready: e.conditions?.ready !== false,
        })),
      ),
    );
    return {
      services: services.items.map((s) => {
        const spec = (s.spec ?? {}) as { clusterIP?: string; publishNotReadyAddresses?: boolean };
        return { name: s.metadata.name, clusterIP: spec.clusterIP, publishNotReadyAddresses: spec.publishNotReadyAddresses };
      }),
      endpoints,
    };
  })();
  cache.set(namespace, { at: Date.now(), view });
  view.catch(() => cache.delete(namespace));
  return view;
}

const socket = dgram.createSocket('udp4');
socket.on('message', (msg, from) => {
  const q = decodeQuery(msg);
  const reply = (answer: Buffer | undefined) => answer && socket.send(answer, from.port, from.address);
  if (!q) return reply(formatError(msg));
  const namespace = namespaceOf(q.name, domain);
  if (namespace === undefined) return reply(encodeAnswer(q, undefined));
  viewOf(namespace).then(
    (view) => reply(encodeAnswer(q, resolve(q.name, domain, view))),
    (err: unknown) => console.error(`dns: ${q.name}: ${(err as Error).message}`),
  );
});
socket.on('error', (err) => {
  console.error(`dns: ${err.message}`);
  process.exit(1);
});
socket.bind(53, listen, () => console.log(`dns: serving ${domain} on ${listen}:53`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
