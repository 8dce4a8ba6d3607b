/** Nodes of the test cluster: Ready, with simulated NPUs in their status. */
import type { KubeApi, KubeList, KubeObject } from './api.ts';

interface NodeStatus {
  conditions?: { type: string; status: string; reason?: string }[];
  capacity?: Record<string, string>;
  allocatable?: Record<string, string>;
}

export function nodeReady(node: KubeObject): boolean {
  return ((node.status as NodeStatus | undefined)?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

export function nodeAllocatable(node: KubeObject, resource: string): string | undefined {
  return (node.status as NodeStatus | undefined)?.allocatable?.[resource];
}

/**
 * Waits for the nodes to register and be Ready, then advertises `count` of `resource` on each, as a
 * device plugin would (the study's `kubectl patch node --subresource=status`): the kubelet keeps
 * extended resources it does not manage, and recomputes allocatable from capacity.
 */
export async function waitForNodes(
  api: KubeApi,
  names: string[],
  resource: string,
  count: number,
  timeoutMs = 60_000,
  /** Called for each node not yet Ready, every round: the cluster starts its kubelet again if it exited. */
  revive: (name: string) => void = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nodes = await api.get<KubeList>('/api/v1/nodes').catch(() => ({ items: [] as KubeObject[] }));
    const byName = new Map(nodes.items.map((n) => [n.metadata.name, n]));
    for (const name of names) {
      const node = byName.get(name);
      // Patched again whenever it is missing: a kubelet that registers again over its node object (a first
      // registration that timed out on a loaded machine) zeroes the extended resources it does not manage.
      if (node && nodeAllocatable(node, resource) !== String(count)) {
        const status = { capacity: { [resource]: String(count) }, allocatable: { [resource]: String(count) } };
        await api.mergePatch(`/api/v1/nodes/${name}/status`, { status });
      }
    }
    const ready = names.filter((n) => {
      const node = byName.get(n);
      return node && nodeReady(node) && nodeAllocatable(node, resource) === String(count);
    });
    if (ready.length === names.length) return;
    for (const name of names) if (!ready.includes(name)) revive(name);
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for nodes ${names.join(', ')} to be Ready with ${count} ${resource} (ready: ${ready.join(', ') || 'none'})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
