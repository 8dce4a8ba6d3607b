/**
 * The test cluster's DNS, the part of CoreDNS's `kubernetes` plugin that training pods use: pods
 * find each other by name (MASTER_ADDR=train-0.train.ns.svc.cluster.local) as on a real cluster.
 * Pure: decoding a query, answering it from the cluster's services and EndpointSlices, encoding
 * the answer. dns-server.ts does the I/O. Records served (CoreDNS's names, A records only):
 *   <service>.<ns>.svc.<domain>             a ClusterIP service's IP; a headless one's endpoint IPs
 *   <hostname>.<service>.<ns>.svc.<domain>  one endpoint of a headless service by its hostname
 *                                           (pods with spec.hostname and spec.subdomain = the service)
 *   <a-b-c-d>.<ns>.pod.<domain>             a pod by its IP
 * Endpoints that are not ready are served only when the service publishes not-ready addresses,
 * as CoreDNS does. Other names are NXDOMAIN at once (nothing leaves the cluster's namespace).
 */

export interface DnsQuestion {
  id: number;
  flags: number;
  name: string;
  type: number;
  /** The question section as received, echoed in the answer. */
  raw: Buffer;
}

export const TYPE_A = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_FORMERR = 1;

export function decodeQuery(msg: Buffer): DnsQuestion | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < msg.length && msg[at] !== 0) {
    const len = msg[at];
    if (len > 63 || at + 1 + len > msg.length) return undefined;
    labels.push(msg.subarray(at + 1, at + 1 + len).toString('ascii'));
    at += 1 + len;
  }
  if (at + 5 > msg.length) return undefined;
  return {
    id: msg.readUInt16BE(0),
    flags: msg.readUInt16BE(2),
    name: labels.join('.').toLowerCase(),
    type: msg.readUInt16BE(at + 1),
    raw: msg.subarray(12, at + 5),
  };
}

/** The answer: A records for `ips` when the name exists (none for other types: NODATA), NXDOMAIN when it does not. */
export function encodeAnswer(q: DnsQuestion, ips: string[] | undefined): Buffer {
  const answers = ips && q.type === TYPE_A ? ips : [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  // QR, the query's opcode and RD, AA; RA off; the response code.
  header.writeUInt16BE(0x8000 | (q.flags & 0x7900) | 0x0400 | (ips ? 0 : RCODE_NXDOMAIN), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const records = answers.map((ip) => {
    const r = Buffer.alloc(16);
    r.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    r.writeUInt16BE(TYPE_A, 2);
    r.writeUInt16BE(1, 4); // IN
    r.writeUInt32BE(5, 6); // TTL: pods come and go within a test
    r.writeUInt16BE(4, 10);
    ip.split('.').forEach((o, i) => r.writeUInt8(Number(o), 12 + i));
    return r;
  });
  return Buffer.concat([header, q.raw, ...records]);
}

export function formatError(msg: Buffer): Buffer | undefined {
  if (msg.length < 12) return undefined;
  const header = Buffer.from(msg.subarray(0, 12));
  header.writeUInt16BE(0x8000 | RCODE_FORMERR, 2);
  header.writeUInt32BE(0, 4);
  header.writeUInt32BE(0, 8);
  return header;
}

export interface ServiceView {
  name: string;
  clusterIP?: string;
  publishNotReadyAddresses?: boolean;
}

export interface EndpointView {
  service: string;
  ip: string;
  hostname?: string;
  ready: boolean;
}

export interface NamespaceView {
  services: ServiceView[];
  endpoints: EndpointView[];
}

/** Which namespace a name asks about (undefined: not a cluster name, NXDOMAIN). */
export function namespaceOf(name: string, domain: string): string | undefined {
  if (!name.endsWith(`.${domain}`)) return undefined;
  const parts = name.slice(0, -domain.length - 1).split('.');
  const kind = parts.at(-1);
  if ((kind === 'svc' && (parts.length === 3 || parts.length === 4)) || (kind === 'pod' && parts.length === 3)) return parts.at(-2);
  return undefined;
}

/** The A records for a cluster name, or undefined for a name that does not exist. */
export function resolve(name: string, domain: string, view: NamespaceView): string[] | undefined {
  const parts = name.slice(0, -domain.length - 1).split('.');
  if (parts.at(-1) === 'pod') {
    const ip = parts[0].replace(/-/g, '.');
    return /^\d{1,3}(\.\d{1,3}){3}$/.test(ip) ? [ip] : undefined;
  }
  const [hostname, serviceName] = parts.length === 4 ? [parts[0], parts[1]] : [undefined, parts[0]];
  const service = view.services.find((s) => s.name === serviceName);
  if (!service) return undefined;
  const served = view.endpoints.filter((e) => e.service === service.name && (e.ready || service.publishNotReadyAddresses));
  if (hostname !== undefined) {
    const ips = served.filter((e) => e.hostname === hostname).map((e) => e.ip);
    return ips.length > 0 ? ips : undefined;
  }
  if (service.clusterIP && service.clusterIP !== 'None') return [service.clusterIP];
  return [...new Set(served.map((e) => e.ip))];
}
