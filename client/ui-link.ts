/**
 * The Web UI link of a pipeline: the configured UI (LINKFLOW_UI_URL), else a local dev server's UI
 * (`linkflow dev` serves it on dev.uiPort of the same host) when it answers.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LinkflowConfig } from '../temporal.config.ts';

/** Where `linkflow dev` notes the Web UI it serves (its port moves when the configured one is taken). */
export function devUiFile(config: LinkflowConfig): string {
  return path.join(path.dirname(config.dev.dbFile), 'dev-ui.json');
}

function notedDevUi(config: LinkflowConfig): string | undefined {
  try {
    const noted = JSON.parse(fs.readFileSync(devUiFile(config), 'utf8')) as { address?: string; uiUrl?: string };
    return noted.address === config.address ? noted.uiUrl : undefined;
  } catch {
    return undefined;
  }
}

const LOCAL = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1500) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/** The UI's base URL, or undefined when none is known. */
export async function webUiUrl(config: LinkflowConfig): Promise<string | undefined> {
  if (config.uiUrl) return config.uiUrl.replace(/\/+$/, '');
  const noted = notedDevUi(config);
  if (noted && (await answers(noted))) return noted.replace(/\/+$/, '');
  const host = config.address.slice(0, config.address.lastIndexOf(':'));
  if (!LOCAL.has(host)) return undefined;
  const local = `http://${host}:${config.dev.uiPort}`;
  return (await answers(local)) ? local : undefined;
}

export function workflowUiLink(uiUrl: string, namespace: string, workflowId: string): string {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
