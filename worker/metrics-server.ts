/**
 * `linkflow worker --metrics HOST:PORT`: one Prometheus endpoint with both the Temporal SDK's worker
 * metrics and linkflow's own (activities/metrics.ts). The SDK's exporter serves its own HTTP endpoint
 * and cannot take extra metrics, so it is bound to a private loopback port and this server appends
 * what it serves at each scrape: Prometheus scrapes one target per worker.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from '../activities/metrics.ts';
import { getFreePort } from '../node/free-port.ts';

export interface MetricsEndpoint {
  /** http://HOST:PORT/metrics */
  url: string;
  close(): Promise<void>;
}

/** "HOST:PORT" (IPv6 as "[::1]:9464"), checked before anything binds it. */
export function parseBindAddress(text: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics: expected HOST:PORT (e.g. 0.0.0.0:9464), got "${text}"`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

/** Where the SDK's own exporter listens: a free port on loopback, only this process reads it. */
export async function sdkMetricsBindAddress(): Promise<string> {
  return `127.0.0.1:${await getFreePort('127.0.0.1')}`;
}

async function sdkMetrics(sdkBind: string | undefined): Promise<string> {
  if (!sdkBind) return '';
  try {
    const res = await fetch(`http://${sdkBind}/metrics`, { signal: AbortSignal.timeout(5000) });
    return await res.text();
  } catch (e) {
    // linkflow's metrics are still worth serving; the gap shows in the output.
    return `# the Temporal SDK's metrics could not be read from ${sdkBind}: ${(e as Error).message.replace(/\n/g, ' ')}\n`;
  }
}

export async function serveMetrics(bind: string, sdkBind?: string): Promise<MetricsEndpoint> {
  const { host, port } = parseBindAddress(bind);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('linkflow serves its metrics at /metrics\n');
      return;
    }
    void sdkMetrics(sdkBind).then((sdk) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(metrics.render() + sdk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}/metrics`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
