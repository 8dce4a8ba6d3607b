/** A pool as `linkflow nodes` shows it: every node with its state, the queue, the latest events. */
import { waitingFor, type Holder, type PoolEvent, type PoolSettings, type PoolState } from './allocator.ts';

export const NODE_STATES = ['free', 'running', 'busy', 'drained', 'quarantined'] as const;
export type NodeStateName = (typeof NODE_STATES)[number];

export interface NodeView {
  name: string;
  address: string;
  state: NodeStateName;
  /** What it runs, and since when (a grant). */
  holder?: Holder & { since: number; nodeRank: number; nodes: number };
  quarantine?: { reason: string; until: number };
  /** Faults of the machine blamed on it within the quarantine window. */
  blames?: number;
  drained: boolean;
  lastSeen: number;
}

export interface QueueView {
  position: number;
  holder: Holder;
  count: number;
  hosts?: string[];
  requestedAt: number;
  waitingFor: string;
}

export interface PoolView {
  pool: string;
  settings: PoolSettings;
  nodes: NodeView[];
  queue: QueueView[];
  events: PoolEvent[];
  /** When this view was taken (workflow time). */
  at: number;
}

export function describePool(state: PoolState, settings: PoolSettings, now: number): PoolView {
  const nodes = Object.values(state.nodes)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((n): NodeView => {
      const grant = n.heldBy ? state.grants[n.heldBy] : undefined;
      const quarantined = n.quarantine && n.quarantine.until > now ? n.quarantine : undefined;
      const stateName: NodeStateName = grant ? 'running' : quarantined ? 'quarantined' : n.drained ? 'drained' : n.running > 0 ? 'busy' : 'free';
      return {
        name: n.name,
        address: n.address,
        state: stateName,
        ...(grant ? { holder: { ...grant.request.holder, since: grant.grantedAt, nodeRank: grant.nodes.indexOf(n.name), nodes: grant.nodes.length } } : {}),
        ...(quarantined ? { quarantine: { reason: quarantined.reason, until: quarantined.until } } : {}),
        ...(n.blames.length ? { blames: n.blames.filter((at) => now - at < settings.quarantineWindowMs).length } : {}),
        drained: n.drained === true,
        lastSeen: n.lastSeen,
      };
    });
  const queue = state.queue.map((r, i): QueueView => ({
    position: i + 1,
    holder: r.holder,
    count: r.count,
    ...(r.hosts ? { hosts: r.hosts } : {}),
    requestedAt: r.requestedAt,
    waitingFor: waitingFor(state, r, now),
  }));
  return { pool: state.pool, settings, nodes, queue, events: state.events.slice(-20), at: now };
}

/** How many nodes could be granted right now. */
export function freeCount(view: PoolView): number {
  return view.nodes.filter((n) => n.state === 'free').length;
}
