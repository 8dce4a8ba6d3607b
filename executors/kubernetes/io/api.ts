/**
 * The Kubernetes API over plain HTTPS, found as kubectl finds it: $KUBECONFIG (its first file), else
 * ~/.kube/config, else the pod's own service account (in-cluster). A kubeconfig's current context
 * gives the server, its CA (or insecure-skip-tls-verify) and the user's token, token file or client
 * certificate. No client library: requests, watches and log streams are a few lines of node:https.
 */
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

export class KubeApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly apiMessage: string,
    readonly reason?: string,
  ) {
    super(`Kubernetes API: ${method} ${path}: HTTP ${status}${reason ? ` ${reason}` : ''}: ${apiMessage}`);
  }
}

interface Connection {
  server: string;
  agent: https.Agent;
  headers: Record<string, string>;
  /** Where it came from, for errors. */
  source: string;
}

type Query = Record<string, string | number | boolean | undefined>;

export class KubeApi {
  private constructor(private readonly c: Connection) {}

  /** The cluster the worker reaches, or an error that says how to give it one. */
  static fromEnvironment(env: NodeJS.ProcessEnv = process.env): KubeApi {
    const file = env.KUBECONFIG?.split(path.delimiter).find(Boolean) ?? path.join(os.homedir(), '.kube', 'config');
    if (fs.existsSync(file)) return new KubeApi(fromKubeconfig(file));
    const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
    if (env.KUBERNETES_SERVICE_HOST && fs.existsSync(path.join(sa, 'token')))
      return new KubeApi({
        server: `https://${env.KUBERNETES_SERVICE_HOST}:${env.KUBERNETES_SERVICE_PORT ?? 443}`,
        agent: new https.Agent({ keepAlive: true, ca: fs.readFileSync(path.join(sa, 'ca.crt')) }),
        headers: { Authorization: `Bearer ${fs.readFileSync(path.join(sa, 'token'), 'utf8').trim()}` },
        source: 'the pod service account',
      });
    throw new Error(
      `no Kubernetes cluster: ${file} does not exist and this worker is not in a pod; set KUBECONFIG on the worker that submits the stage's gangs`,
    );
  }

  get source(): string {
    return this.c.source;
  }

  private url(p: string, query?: Query): URL {
    const url = new URL(p.replace(/^\//, ''), this.c.server.endsWith('/') ? this.c.server : `${this.c.server}/`);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  async raw(method: string, p: string, o: { body?: unknown; query?: Query; contentType?: string } = {}): Promise<{ status: number; body: string }> {
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        this.url(p, o.query),
        {
          method,
          agent: this.c.agent,
          headers: {
            ...this.c.headers,
            Accept: 'application/json',
            ...(payload === undefined ? {} : { 'Content-Type': o.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Kubernetes API (${this.c.server}): ${method} ${p}: no answer in 30 s`)));
      req.on('error', (e) => reject(new Error(`Kubernetes API (${this.c.server}, from ${this.c.source}): ${method} ${p}: ${e.message}`)));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async request<T>(method: string, p: string, o: { body?: unknown; query?: Query; contentType?: string } = {}): Promise<T> {
    const res = await this.raw(method, p, o);
    if (res.status >= 400) throw apiError(method, p, res);
    return JSON.parse(res.body) as T;
  }

  get<T>(p: string, query?: Query): Promise<T> {
    return this.request<T>('GET', p, { query });
  }

  /** The object, or undefined on 404. */
  async find<T>(p: string): Promise<T | undefined> {
    const res = await this.raw('GET', p);
    if (res.status === 404) return undefined;
    if (res.status >= 400) throw apiError('GET', p, res);
    return JSON.parse(res.body) as T;
  }

  create<T>(p: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>('POST', p, { body, query });
  }

  /** Deletes; a missing object is already deleted. */
  async delete(p: string, options: { gracePeriodSeconds?: number; propagationPolicy?: string } = {}): Promise<void> {
    const res = await this.raw('DELETE', p, { body: { kind: 'DeleteOptions', apiVersion: 'v1', ...options } });
    if (res.status >= 400 && res.status !== 404) throw apiError('DELETE', p, res);
  }

  /** Whether the API serves a group/version's resource (e.g. scheduling.k8s.io/v1beta1 podgroups). */
  async serves(groupVersion: string, resource: string): Promise<boolean> {
    const res = await this.raw('GET', groupVersion.includes('/') ? `/apis/${groupVersion}` : `/api/${groupVersion}`);
    if (res.status !== 200) return false;
    return (JSON.parse(res.body) as { resources?: { name: string }[] }).resources?.some((r) => r.name === resource) ?? false;
  }

  /**
   * A stream of lines (a watch's events, a pod's log), until it ends or `signal` aborts; resolves when
   * it ends. An HTTP error rejects with the API's message.
   */
  stream(p: string, query: Query, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve();
      const req = https.request(this.url(p, query), { method: 'GET', agent: this.c.agent, headers: { ...this.c.headers }, signal }, (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(apiError('GET', p, { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })));
          return;
        }
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          pending += chunk;
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) onLine(line);
        });
        res.on('end', () => {
          if (pending) onLine(pending);
          resolve();
        });
        res.on('error', () => resolve());
        res.on('aborted', () => resolve());
      });
      req.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
      req.end();
    });
  }

  close(): void {
    this.c.agent.destroy();
  }
}

function apiError(method: string, p: string, res: { status: number; body: string }): KubeApiError {
  try {
    const s = JSON.parse(res.body) as { message?: string; reason?: string };
    return new KubeApiError(method, p, res.status, s.message ?? res.body.slice(0, 500), s.reason);
  } catch {
    return new KubeApiError(method, p, res.status, res.body.slice(0, 500));
  }
}

interface Kubeconfig {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: {
    name: string;
    cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string; 'insecure-skip-tls-verify'?: boolean };
  }[];
  users?: {
    name: string;
    user: {
      token?: string;
      tokenFile?: string;
      'client-certificate'?: string;
      'client-certificate-data'?: string;
      'client-key'?: string;
      'client-key-data'?: string;
    };
  }[];
}

function fromKubeconfig(file: string): Connection {
  const config = parseYaml(fs.readFileSync(file, 'utf8')) as Kubeconfig;
  const dir = path.dirname(file);
  const ctx = config.contexts?.find((c) => c.name === config['current-context']) ?? config.contexts?.[0];
  const cluster = config.clusters?.find((c) => c.name === ctx?.context.cluster)?.cluster;
  const user = config.users?.find((u) => u.name === ctx?.context.user)?.user ?? {};
  if (!cluster?.server) throw new Error(`${file}: no cluster with a server for context ${ctx?.name ?? '(none)'}`);
  const read = (data?: string, f?: string) => (data ? Buffer.from(data, 'base64') : f ? fs.readFileSync(path.resolve(dir, f)) : undefined);
  const token = user.token ?? (user.tokenFile ? fs.readFileSync(path.resolve(dir, user.tokenFile), 'utf8').trim() : undefined);
  return {
    server: cluster.server,
    agent: new https.Agent({
      keepAlive: true,
      rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
      ca: read(cluster['certificate-authority-data'], cluster['certificate-authority']),
      cert: read(user['client-certificate-data'], user['client-certificate']),
      key: read(user['client-key-data'], user['client-key']),
    }),
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    source: file,
  };
}
