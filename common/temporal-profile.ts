/**
 * The Temporal connection as Temporal's own tools configure it (@temporalio/envconfig): a profile of
 * temporal.toml (TEMPORAL_CONFIG_FILE, else <user config dir>/temporalio/temporal.toml; the profile
 * TEMPORAL_PROFILE names, else "default"), then the TEMPORAL_* variables over it, *_DATA ones included.
 * What linkflow adds: the older TEMPORAL_TLS_CERT/KEY/CA names, and a client certificate without its
 * key being an error instead of a connection that silently goes without the client certificate.
 */
import { loadClientConfigProfile, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';

type Env = Record<string, string | undefined>;

/** TLS as linkflow's config holds it: each file as a path or its contents (PEM), not both. */
export interface TlsSettings {
  /** Unset: on when there is an API key or any other TLS setting (envconfig's rule); false turns it off even then. */
  enabled?: boolean;
  clientCertPath?: string;
  clientCertData?: string;
  clientKeyPath?: string;
  clientKeyData?: string;
  serverCaCertPath?: string;
  serverCaCertData?: string;
  serverName?: string;
}

export interface ProfileSettings {
  address?: string;
  namespace?: string;
  apiKey?: string;
  tls: TlsSettings;
  grpcMeta?: Record<string, string>;
}

/** TEMPORAL_TLS_CERT, _KEY and _CA: the names of older Temporal CLIs, read when the current ones are unset. */
const LEGACY_TLS_NAMES: [string, string][] = [
  ['TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_CLIENT_CERT_PATH'],
  ['TEMPORAL_TLS_KEY', 'TEMPORAL_TLS_CLIENT_KEY_PATH'],
  ['TEMPORAL_TLS_CA', 'TEMPORAL_TLS_SERVER_CA_CERT_PATH'],
];

/** The profile with the environment over it. An unknown TEMPORAL_PROFILE or a malformed file is an error naming it. */
export function temporalProfile(env: Env): ProfileSettings {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') vars[k] = v;
  for (const [legacy, current] of LEGACY_TLS_NAMES) if (vars[legacy] !== undefined && vars[current] === undefined) vars[current] = vars[legacy];
  let profile: ClientConfigProfile;
  try {
    profile = loadClientConfigProfile({ overrideEnvVars: vars });
  } catch (e) {
    const file = vars.TEMPORAL_CONFIG_FILE ?? 'temporal.toml';
    throw new Error(
      `Temporal connection profile (${file}${vars.TEMPORAL_PROFILE ? `, TEMPORAL_PROFILE=${vars.TEMPORAL_PROFILE}` : ''}): ${(e as Error).message}`,
    );
  }
  const tls = profile.tls;
  return {
    address: profile.address,
    namespace: profile.namespace,
    apiKey: profile.apiKey,
    grpcMeta: profile.grpcMeta,
    tls: tls
      ? {
          ...(tls.disabled !== undefined ? { enabled: !tls.disabled } : {}),
          ...source('clientCert', tls.clientCert),
          ...source('clientKey', tls.clientKey),
          ...source('serverCaCert', tls.serverCACert),
          ...(tls.serverName !== undefined ? { serverName: tls.serverName } : {}),
        }
      : {},
  };
}

function source(name: 'clientCert' | 'clientKey' | 'serverCaCert', s: ConfigDataSource | undefined): Partial<TlsSettings> {
  if (s === undefined) return {};
  if ('path' in s) return { [`${name}Path`]: s.path };
  return { [`${name}Data`]: typeof s.data === 'string' ? s.data : new TextDecoder().decode(s.data) };
}

/** Whether a TLS setting other than `enabled` is given. */
export function anyTlsSetting(tls: TlsSettings): boolean {
  return Object.entries(tls).some(([k, v]) => k !== 'enabled' && v !== undefined);
}

/**
 * A client certificate needs its key and a key its certificate: envconfig would connect without
 * either. The message names the setting that was given and the ones that are missing.
 */
export function checkClientCertPair(tls: TlsSettings): string | undefined {
  const cert = tls.clientCertPath !== undefined || tls.clientCertData !== undefined;
  const key = tls.clientKeyPath !== undefined || tls.clientKeyData !== undefined;
  if (cert === key) return undefined;
  const [given, missing] = cert ? ['CERT', 'KEY'] : ['KEY', 'CERT'];
  const [givenToml, missingToml] = cert ? ['client_cert', 'client_key'] : ['client_key', 'client_cert'];
  const how = (cert ? tls.clientCertPath : tls.clientKeyPath) !== undefined ? 'PATH' : 'DATA';
  return (
    `a TLS client ${cert ? 'certificate' : 'key'} is set (TEMPORAL_TLS_CLIENT_${given}_${how}, or ${givenToml}_${how.toLowerCase()} in the temporal.toml profile) ` +
    `without its ${cert ? 'key' : 'certificate'}: set TEMPORAL_TLS_CLIENT_${missing}_PATH or TEMPORAL_TLS_CLIENT_${missing}_DATA ` +
    `(${missingToml}_path or ${missingToml}_data in the profile)`
  );
}
