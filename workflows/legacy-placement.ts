/**
 * Placement as it was before the pool's allocator (probing the pool's pollers, nothing reserved),
 * for pipelines started before it: their recorded histories take this path (`patched` in
 * pipeline.ts and benchmark.ts). Remove, with activities/legacy-placement.ts, once none of them runs.
 */
import { isCancellation, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import type { StageState } from '../contracts/run-state.ts';
import { nodeQueue } from '../plan/gang.ts';
import type { Placement } from './placement.ts';
import { PlacementDeferred } from './placement.ts';

const bookkeeping = proxyActivities<typeof activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 5, initialInterval: '2s' } });

async function probeNode(pool: string, node: string, reservePort = false) {
  const { nodeInfo } = proxyActivities<typeof activities>({ taskQueue: nodeQueue(pool, node), scheduleToCloseTimeout: '15s', retry: { maximumAttempts: 1 } });
  try {
    return await nodeInfo({ reservePort });
  } catch (err) {
    if (isCancellation(err)) throw err;
    return undefined;
  }
}

export async function legacyFreeNodes(pool: string, candidates?: string[]): Promise<string[]> {
  const names = candidates ?? (await bookkeeping.poolNodes({ pool }));
  const answers = await Promise.all(names.map((node) => probeNode(pool, node)));
  return answers.filter((a) => a !== undefined && a.running === 0).map((a) => a!.node);
}

function chooseNodes(hosts: string[] | undefined, count: number, free: string[]): string[] | undefined {
  if (hosts) return hosts.every((h) => free.includes(h)) ? hosts : undefined;
  const sorted = [...new Set(free)].sort();
  return sorted.length >= count ? sorted.slice(0, count) : undefined;
}

export async function legacyPlaceGang(pool: string, count: number, hosts: string[] | undefined, s: StageState): Promise<Placement> {
  for (let waitS = 15; ; waitS = Math.min(300, waitS * 2)) {
    const nodes = chooseNodes(hosts, count, await legacyFreeNodes(pool, hosts));
    if (nodes) {
      const master = await probeNode(pool, nodes[0], true);
      if (master?.port !== undefined) {
        return { requestId: '', nodes: nodes.map((name, k) => ({ name, address: k === 0 ? master.address : name })), masterPort: master.port };
      }
    }
    s.status = 'waiting-for-nodes';
    s.note = `waiting for ${count} nodes in pool ${pool}`;
    if (workflowInfo().continueAsNewSuggested) throw new PlacementDeferred(s.note);
    await sleep(`${waitS}s`);
  }
}
