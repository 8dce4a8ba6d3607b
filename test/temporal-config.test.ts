/**
 * The Temporal connection through @temporalio/envconfig: temporal.toml profiles, TEMPORAL_PROFILE, the
 * TEMPORAL_* variables (the *_DATA ones too), turning TLS off, explicit settings winning, and a client
 * certificate without its key refused. Temp files and an explicit environment, nothing of this machine's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../client/connect.ts';
import { startDevServer, type DevServer } from '../devserver/dev-server.ts';
import { connectionOptions, defaultNotify, loadConfig } from '../temporal.config.ts';
import { tempDir } from '../testkit/specs.ts';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n';

function setup(toml: string): { dir: string; env: Record<string, string> } {
  const dir = tempDir('temporal-toml');
  fs.writeFileSync(path.join(dir, 'client.pem'), CERT);
  fs.writeFileSync(path.join(dir, 'client.key'), KEY);
  const file = path.join(dir, 'temporal.toml');
  fs.writeFileSync(file, toml.replaceAll('$DIR', dir));
  // A HOME without a config of its own, so only the file named here counts.
  return { dir, env: { HOME: dir, TEMPORAL_CONFIG_FILE: file } };
}

const PROFILES = `
[profile.default]
address = "localhost:7233"
namespace = "dev"

[profile.prod]
address = "prod.tmprl.cloud:7233"
namespace = "prod.acct"
api_key = "key-from-toml"
[profile.prod.grpc_meta]
team-id = "llm"

[profile.mtls]
address = "mtls.example:7233"
[profile.mtls.tls]
client_cert_path = "$DIR/client.pem"
client_key_path = "$DIR/client.key"
server_name = "mtls.example"

[profile.plain]
address = "plain.example:7233"
api_key = "k"
[profile.plain.tls]
disabled = true

[profile.half]
address = "half.example:7233"
[profile.half.tls]
client_cert_path = "$DIR/client.pem"
`;

describe('Temporal connection profiles', () => {
  it('the default profile of temporal.toml, then TEMPORAL_PROFILE picks another; linkflow settings stay LINKFLOW_*', () => {
    const { env } = setup(PROFILES);
    const dev = loadConfig({}, { ...env, LINKFLOW_TASK_QUEUE: 'pool-a' });
    expect(dev).toMatchObject({ address: 'localhost:7233', namespace: 'dev', taskQueue: 'pool-a' });
    expect(connectionOptions(dev)).toEqual({ address: 'localhost:7233' });

    const prod = loadConfig({}, { ...env, TEMPORAL_PROFILE: 'prod' });
    expect(prod).toMatchObject({ address: 'prod.tmprl.cloud:7233', namespace: 'prod.acct', apiKey: 'key-from-toml' });
    // An API key implies TLS; the profile's gRPC headers go along.
    expect(connectionOptions(prod)).toMatchObject({ apiKey: 'key-from-toml', tls: { clientCertPair: undefined }, metadata: { 'team-id': 'llm' } });
  });

  it('TEMPORAL_* variables override the profile; an unknown profile is an error naming it', () => {
    const { env } = setup(PROFILES);
    expect(loadConfig({}, { ...env, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'other.acct' }).namespace).toBe('other.acct');
    expect(() => loadConfig({}, { ...env, TEMPORAL_PROFILE: 'nope' })).toThrow(/TEMPORAL_PROFILE=nope.*Profile 'nope' not found/);
  });

  it('without TEMPORAL_CONFIG_FILE, the user config directory holds temporal.toml', () => {
    const dir = tempDir('temporal-home');
    fs.mkdirSync(path.join(dir, '.config', 'temporalio'), { recursive: true });
    fs.writeFileSync(path.join(dir, '.config', 'temporalio', 'temporal.toml'), '[profile.default]\naddress = "home.example:7233"\n');
    expect(loadConfig({}, { HOME: dir }).address).toBe('home.example:7233');
    // Nothing anywhere: the dev server's address.
    expect(loadConfig({}, { HOME: tempDir('temporal-empty') }).address).toBe('127.0.0.1:7233');
  });

  it('mTLS from a profile with paths, and from *_DATA variables with the PEM itself', () => {
    const { env } = setup(PROFILES);
    const mtls = connectionOptions(loadConfig({}, { ...env, TEMPORAL_PROFILE: 'mtls' }));
    expect(mtls.tls).toMatchObject({ serverNameOverride: 'mtls.example', clientCertPair: { crt: Buffer.from(CERT), key: Buffer.from(KEY) } });
    const data = connectionOptions(
      loadConfig(
        {},
        {
          HOME: tempDir('temporal-data'),
          TEMPORAL_ADDRESS: 'x:7233',
          TEMPORAL_TLS_CLIENT_CERT_DATA: CERT,
          TEMPORAL_TLS_CLIENT_KEY_DATA: KEY,
          TEMPORAL_TLS_SERVER_CA_CERT_DATA: CERT,
        },
      ),
    );
    expect(data.tls).toMatchObject({ serverRootCACertificate: Buffer.from(CERT), clientCertPair: { crt: Buffer.from(CERT), key: Buffer.from(KEY) } });
  });

  it("TLS off: a profile's tls.disabled or TEMPORAL_TLS=false, even with an API key", () => {
    const { env } = setup(PROFILES);
    expect(connectionOptions(loadConfig({}, { ...env, TEMPORAL_PROFILE: 'plain' }))).toEqual({ address: 'plain.example:7233', apiKey: 'k', tls: false });
    expect(connectionOptions(loadConfig({}, { ...env, TEMPORAL_PROFILE: 'prod', TEMPORAL_TLS: 'false' })).tls).toBe(false);
    // And on again from the environment.
    expect(connectionOptions(loadConfig({}, { ...env, TEMPORAL_PROFILE: 'plain', TEMPORAL_TLS: 'true' })).tls).toMatchObject({ clientCertPair: undefined });
  });

  it('explicit settings win over the profile: TLS on, and a certificate path replacing the profile data', () => {
    const { dir, env } = setup(PROFILES);
    expect(connectionOptions(loadConfig({ tls: { enabled: true } }, { ...env, TEMPORAL_PROFILE: 'plain' })).tls).toMatchObject({ clientCertPair: undefined });
    const fromData = { ...env, TEMPORAL_TLS_CLIENT_CERT_DATA: 'not a cert', TEMPORAL_TLS_CLIENT_KEY_DATA: 'not a key' };
    const explicit = loadConfig({ tls: { clientCertPath: path.join(dir, 'client.pem'), clientKeyPath: path.join(dir, 'client.key') } }, fromData);
    expect(explicit.tls.clientCertData).toBeUndefined();
    expect(connectionOptions(explicit).tls).toMatchObject({ clientCertPair: { crt: Buffer.from(CERT), key: Buffer.from(KEY) } });
  });

  it('a certificate without its key (or a key without its certificate) is an error naming both settings', () => {
    const { env } = setup(PROFILES);
    expect(() => loadConfig({}, { ...env, TEMPORAL_PROFILE: 'half' })).toThrow(
      /TLS client certificate is set \(TEMPORAL_TLS_CLIENT_CERT_PATH, or client_cert_path in the temporal.toml profile\) without its key: set TEMPORAL_TLS_CLIENT_KEY_PATH or TEMPORAL_TLS_CLIENT_KEY_DATA/,
    );
    expect(() => loadConfig({}, { HOME: tempDir('temporal-key'), TEMPORAL_TLS_CLIENT_KEY_DATA: KEY })).toThrow(
      /TLS client key is set \(TEMPORAL_TLS_CLIENT_KEY_DATA.*without its certificate: set TEMPORAL_TLS_CLIENT_CERT_PATH or TEMPORAL_TLS_CLIENT_CERT_DATA/,
    );
    // The older names still count (and are checked alike).
    expect(() => loadConfig({}, { HOME: tempDir('temporal-legacy'), TEMPORAL_TLS_CERT: '/x.pem' })).toThrow(/without its key/);
  });
});

describe('the default webhook', () => {
  it('LINKFLOW_NOTIFY_WEBHOOK is the webhook of pipelines without notify:, for every event', () => {
    const home = { HOME: tempDir('notify-home') };
    expect(defaultNotify(loadConfig({}, home))).toBeUndefined();
    const config = loadConfig(
      {},
      { ...home, LINKFLOW_NOTIFY_WEBHOOK: 'https://hooks.example/x', LINKFLOW_NOTIFY_FORMAT: 'slack', LINKFLOW_NOTIFY_WAITING_AFTER: '10m' },
    );
    expect(defaultNotify(config)).toEqual({
      webhooks: [{ url: 'https://hooks.example/x', format: 'slack', events: ['failed', 'succeeded', 'waiting-for-nodes', 'retry-budget'] }],
      waitingForNodesAfterMs: 600_000,
      retryBudgetUsed: 0.8,
    });
    expect(() => loadConfig({}, { ...home, LINKFLOW_NOTIFY_WEBHOOK: 'ftp://x' })).toThrow(/notify.webhook: expected an http/);
  });
});

describe('a real connection through a profile (dev server)', () => {
  let server: DevServer;
  beforeAll(async () => {
    server = await startDevServer({ ui: false, namespace: 'profile-ns' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("connects to the profile's address and namespace; with an API key, only tls.disabled keeps TLS off for a plaintext server", async () => {
    const { env } = setup(`
[profile.local]
address = "${server.address}"
namespace = "profile-ns"
[profile.keyed]
address = "${server.address}"
api_key = "not-checked-by-the-dev-server"
[profile.keyed-plain]
address = "${server.address}"
api_key = "not-checked-by-the-dev-server"
[profile.keyed-plain.tls]
disabled = true
`);
    const client = await connectClient(loadConfig({}, { ...env, TEMPORAL_PROFILE: 'local' }));
    expect(client.options.namespace).toBe('profile-ns');
    const described = await client.workflowService.describeNamespace({ namespace: 'profile-ns' });
    expect(described.namespaceInfo?.name).toBe('profile-ns');
    await client.connection.close();
    // An API key implies TLS, which a plaintext dev server cannot speak.
    await expect(connectClient(loadConfig({}, { ...env, TEMPORAL_PROFILE: 'keyed' }), 3000)).rejects.toThrow(/no Temporal server reachable/);
    const plain = await connectClient(loadConfig({}, { ...env, TEMPORAL_PROFILE: 'keyed-plain' }));
    await plain.connection.close();
  });
});
