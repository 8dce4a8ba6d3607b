/**
 * The Web UI link of a pipeline: the configured UI (LINKFLOW_UI_URL), else a local dev server's UI
 * (`linkflow dev` serves it on dev.uiPort of the same host) when it answers.
 */
import type { LinkflowConfig } from '../temporal.config.ts';

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
  const host = config.address.slice(0, config.address.lastIndexOf(':'));
  if (!LOCAL.has(host)) return undefined;
  const local = `http://${host}:${config.dev.uiPort}`;
  return (await answers(local)) ? local : undefined;
}

export function workflowUiLink(uiUrl: string, namespace: string, workflowId: string): string {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
