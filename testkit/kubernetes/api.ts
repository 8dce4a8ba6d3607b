/**
 * A small client for the test cluster's API over plain HTTPS: bearer token, and the apiserver's
 * self-signed certificate accepted (the cluster lives for one test file, on this machine only).
 * The testkit stays free of @kubernetes/client-node so the executor may pick its own client.
 */
import https from 'node:https';

export class KubeApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`${method} ${path}: HTTP ${status}: ${statusMessage(body)}`);
  }
}

export interface RequestOptions {
  body?: unknown;
  /** Defaults to application/json; PATCH calls name their patch type. */
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
}

export class KubeApi {
  private readonly agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });

  constructor(
    readonly server: string,
    private readonly token: string,
  ) {}

  /** The raw answer: status and body text, whatever the status. */
  async raw(method: string, path: string, options: RequestOptions = {}): Promise<{ status: number; body: string }> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            Authorization: `Bearer ${this.token}`,
            Accept: 'application/json',
            ...(payload === undefined ? {} : { 'Content-Type': options.contentType ?? 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
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
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: no answer in 30 s`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** The answer's body as text; an HTTP error status throws KubeApiError with the API's message. */
  async text(method: string, path: string, options: RequestOptions = {}): Promise<string> {
    const res = await this.raw(method, path, options);
    if (res.status >= 400) throw new KubeApiError(method, path, res.status, res.body);
    return res.body;
  }

  async request<T = KubeObject>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return JSON.parse(await this.text(method, path, options)) as T;
  }

  get<T = KubeObject>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('GET', path, { query });
  }

  /** The object, or undefined when the API answers 404. */
  async find<T = KubeObject>(path: string): Promise<T | undefined> {
    const res = await this.raw('GET', path);
    if (res.status === 404) return undefined;
    if (res.status >= 400) throw new KubeApiError('GET', path, res.status, res.body);
    return JSON.parse(res.body) as T;
  }

  create<T = KubeObject>(path: string, body: unknown, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('POST', path, { body, query });
  }

  mergePatch<T = KubeObject>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body, contentType: 'application/merge-patch+json' });
  }

  async delete(path: string, query?: RequestOptions['query']): Promise<void> {
    const res = await this.raw('DELETE', path, { query });
    if (res.status >= 400 && res.status !== 404) throw new KubeApiError('DELETE', path, res.status, res.body);
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The fields every object has; the rest is read by the test that asked for it. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export interface KubeList<T = KubeObject> {
  items: T[];
  metadata: { resourceVersion?: string };
}

/** The message of a Status answer, or the body itself. */
function statusMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: string };
    if (parsed.message) return parsed.message;
  } catch {
    // not JSON
  }
  return body.slice(0, 500);
}
