/** The pool's rules without Temporal: grants, the queue and its backfill, quarantine, liveness, reclaiming. */
import { describe, expect, it } from 'vitest';
import {
  blameNode,
  emptyPool,
  endQuarantines,
  enqueueRequest,
  expireSilentNodes,
  answerFor,
  nodeAction,
  reclaim,
  releaseRequest,
  renewNode,
  requeueRequest,
  schedule,
  quarantineNode,
  removeNode,
  requestIds,
  forgiveSilence,
  type NodeRequestInput,
  type PoolSettings,
  type PoolState,
} from '../pool/allocator.ts';
import { describePool, freeCount } from '../pool/view.ts';

const SETTINGS: PoolSettings = {
  nodeTimeoutMs: 30_000,
  quarantineFailures: 2,
  quarantineWindowMs: 3_600_000,
  coolDownMs: 600_000,
  reclaimIntervalMs: 60_000,
  historyLimit: 4000,
};

function pool(...names: string[]): PoolState {
  const state = emptyPool('p');
  for (const name of names) renewNode(state, { name, address: `10.0.0.${name.length}`, running: 0 }, 0);
  return state;
}

let n = 0;
function req(count: number, extra: Partial<NodeRequestInput> = {}): NodeRequestInput {
  n++;
  return { id: `r${n}`, holder: { workflowId: `wf${n}`, pipeline: `pipe${n}`, stage: 'pretrain', attempt: 1 }, count, ...extra };
}

/** Asks and serves, as the pool workflow does. */
function ask(state: PoolState, r: NodeRequestInput, now = 1) {
  const problem = enqueueRequest(state, r, now);
  if (problem) return { refused: problem };
  schedule(state, now);
  return answerFor(state, r.id, now);
}

function grantedNodes(answer: ReturnType<typeof ask>): string[] | undefined {
  return 'granted' in answer ? answer.granted.nodes.map((x) => x.name) : undefined;
}

describe('the pool allocator', () => {
  it('grants free nodes and never the same node twice', () => {
    const s = pool('a', 'b', 'c');
    expect(grantedNodes(ask(s, req(2)))).toEqual(['a', 'b']);
    const second = ask(s, req(2));
    expect('queued' in second && second.queued.position).toBe(1);
    const third = ask(s, req(1)); // c is kept for the 2-node request ahead
    expect('queued' in third && third.queued.waitingFor).toMatch(
      /^1 node; 0 free of 3 \(a running pipe\d+\/pretrain attempt 1; b running .*; c kept for a request ahead\)$/,
    );
    const held = Object.values(s.nodes).filter((x) => x.heldBy);
    expect(held.map((x) => x.name)).toEqual(['a', 'b']);
  });

  it('asking again with the same id answers the same request (its grant, or its place)', () => {
    const s = pool('a');
    const r = req(1);
    expect(grantedNodes(ask(s, r))).toEqual(['a']);
    expect(grantedNodes(ask(s, r))).toEqual(['a']);
    const waiting = req(1);
    ask(s, waiting);
    ask(s, waiting);
    expect(s.queue).toHaveLength(1);
  });

  it('first come, first served: a 3-node request at the head is not overtaken by a stream of 1-node requests', () => {
    const s = pool('a', 'b', 'c');
    const small = [req(1), req(1)];
    small.forEach((r) => ask(s, r));
    const big = req(3);
    expect('queued' in ask(s, big)).toBe(true);
    // Each time a small job ends, a new small one asks: the freed node is kept for the big one.
    for (const done of small) {
      releaseRequest(s, done.id, 2);
      const next = req(1);
      const answer = ask(s, next, 3);
      expect('queued' in answer).toBe(true);
    }
    expect(grantedNodes(answerFor(s, big.id, 4))).toEqual(['a', 'b', 'c']);
  });

  it('backfills only nodes the head cannot use: named hosts leave the others to later requests', () => {
    const s = pool('a', 'b', 'c');
    const holdA = req(1, { hosts: ['a'] });
    ask(s, holdA);
    const head = req(2, { hosts: ['a', 'b'] });
    expect('queued' in ask(s, head)).toBe(true);
    // b is kept for the head; c is nothing the head can use.
    expect(grantedNodes(ask(s, req(1)))).toEqual(['c']);
    expect(grantedNodes(ask(s, req(1)))).toBeUndefined();
    releaseRequest(s, holdA.id, 5);
    schedule(s, 5);
    expect(grantedNodes(answerFor(s, head.id, 5))).toEqual(['a', 'b']);
  });

  it('a request larger than the pool waits without holding the others back', () => {
    const s = pool('a', 'b');
    const huge = req(64);
    const answer = ask(s, huge);
    expect('queued' in answer && answer.queued.waitingFor).toBe('64 nodes; 2 free of 2; more than the pool has in service: it waits for nodes to join');
    expect(grantedNodes(ask(s, req(1)))).toEqual(['a']);
  });

  it('refuses a malformed request instead of queueing it', () => {
    const s = pool('a', 'b');
    expect(ask(s, req(2, { hosts: ['a'] }))).toEqual({ refused: 'names 1 hosts for 2 nodes' });
    expect(ask(s, req(0))).toEqual({ refused: 'a request needs at least one node (got 0)' });
  });

  it('a node running something no grant knows of is not granted until it renews idle', () => {
    const s = pool('a', 'b');
    renewNode(s, { name: 'a', address: 'x', running: 1 }, 1);
    expect(grantedNodes(ask(s, req(1)))).toEqual(['b']);
    const next = req(1);
    const answer = ask(s, next);
    expect('queued' in answer && answer.queued.waitingFor).toContain('a busy with a command no grant knows of');
    renewNode(s, { name: 'a', address: 'x', running: 0 }, 2);
    schedule(s, 2);
    expect(grantedNodes(answerFor(s, next.id, 2))).toEqual(['a']);
  });

  it('avoids the node that failed the previous attempt whenever another is free', () => {
    const s = pool('a', 'b', 'c');
    expect(grantedNodes(ask(s, req(2, { avoid: ['a'] })))).toEqual(['b', 'c']);
    const only = pool('a');
    expect(grantedNodes(ask(only, req(1, { avoid: ['a'] })))).toEqual(['a']);
  });

  it('quarantines a node blamed for repeated infrastructure failures within the window, and takes it back after the cool-down', () => {
    const s = pool('a', 'b');
    expect(blameNode(s, SETTINGS, 'a', 'communication', 0)).toBe('counted');
    // An old failure outside the window does not count.
    expect(blameNode(s, SETTINGS, 'a', 'communication', SETTINGS.quarantineWindowMs + 1)).toBe('counted');
    expect(blameNode(s, SETTINGS, 'a', 'hang', SETTINGS.quarantineWindowMs + 2)).toBe('quarantined');
    const now = SETTINGS.quarantineWindowMs + 3;
    expect(s.nodes.a.quarantine?.reason).toContain('2 infrastructure failures within 60 min, last: hang');
    expect(s.nodes.a.quarantine?.until).toBe(SETTINGS.quarantineWindowMs + 2 + SETTINGS.coolDownMs);
    const view = describePool(s, SETTINGS, now);
    expect(view.nodes.find((x) => x.name === 'a')?.state).toBe('quarantined');
    // Quarantined on blames alone: granted last, only when no other node is free (a queue never waits behind it).
    expect(grantedNodes(ask(s, req(1), now))).toEqual(['b']);
    expect(grantedNodes(ask(s, req(1), now))).toEqual(['a']);
    expect(endQuarantines(s, s.nodes.a.quarantine!.until)).toEqual(['a']);
    expect(s.nodes.a.blames).toEqual([]);
  });

  it('a grant whose node failed its health check goes back to its place in the queue and is served by other nodes', () => {
    const s = pool('a', 'b', 'c');
    const first = req(2);
    expect(grantedNodes(ask(s, first))).toEqual(['a', 'b']);
    const later = req(2);
    expect('queued' in ask(s, later)).toBe(true);
    quarantineNode(s, SETTINGS, 'a', 'npu-smi: device 3 Critical', 2);
    requeueRequest(s, first.id, 2);
    schedule(s, 2);
    expect(grantedNodes(answerFor(s, first.id, 2))).toEqual(['b', 'c']);
    expect('queued' in answerFor(s, later.id, 2)).toBe(true);
  });

  it('a silent node leaves the pool; its grant is released when its holder no longer runs', () => {
    const s = pool('a', 'b');
    const r = req(2);
    ask(s, r);
    renewNode(s, { name: 'b', address: 'x', running: 1 }, 25_000);
    expect(expireSilentNodes(s, SETTINGS, 31_000)).toEqual(['a']);
    expect(Object.keys(s.nodes)).toEqual(['b']);
    expect(reclaim(s, [r.holder.workflowId], 32_000)).toEqual([r.id]);
    expect(s.nodes.b.heldBy).toBeUndefined();
    expect(s.events.map((e) => e.what).join('\n')).toMatch(/left: silent for 31 s[\s\S]*no longer runs \(reclaimed\)/);
  });

  it('a node back after a silence is held again by the grant that still names it', () => {
    const s = pool('a', 'b');
    const r = req(2);
    ask(s, r);
    expireSilentNodes(s, SETTINGS, 31_000);
    expect(Object.keys(s.nodes)).toEqual([]);
    renewNode(s, { name: 'a', address: 'x', running: 1 }, 32_000);
    renewNode(s, { name: 'c', address: 'y', running: 0 }, 32_000);
    expect(s.nodes.a.heldBy).toBe(r.id);
    expect(describePool(s, SETTINGS, 32_000).nodes.map((n) => [n.name, n.state, n.holder?.pipeline])).toEqual([
      ['a', 'running', r.holder.pipeline],
      ['c', 'free', undefined],
    ]);
    // Released as usual when its attempt ends.
    releaseRequest(s, r.id, 33_000);
    expect(s.nodes.a.heldBy).toBeUndefined();
  });

  it('a node that leaves and comes back keeps a failed health check and its drain; its blames are dropped (a worker that came back is not a bad machine)', () => {
    const s = pool('a', 'b', 'c');
    quarantineNode(s, SETTINGS, 'a', 'npu-smi: device 3 Critical', 1);
    nodeAction(s, 'drain', 'b', 1);
    blameNode(s, SETTINGS, 'b', 'hang', 1, 'job-1');
    blameNode(s, SETTINGS, 'c', 'node-lost', 1, 'job-1');
    blameNode(s, SETTINGS, 'c', 'node-lost', 1, 'job-2');
    expect(s.nodes.c.quarantine?.evidence).toBe('blames');
    for (const n of ['a', 'b', 'c']) removeNode(s, n, 'its worker shut down', 2);
    for (const n of ['a', 'b', 'c']) renewNode(s, { name: n, address: n, running: 0 }, 3);
    expect(s.nodes.a.quarantine?.reason).toBe('npu-smi: device 3 Critical');
    expect(s.nodes.b.drained).toBe(true);
    expect(s.nodes.b.blames).toEqual([]);
    expect(s.nodes.c.quarantine).toBeUndefined();
    expect(grantedNodes(ask(s, req(1), 4))).toEqual(['c']);
  });

  it('a worker replaced before its node timed out (same name, another process) clears the blames and the quarantine they caused', () => {
    const s = emptyPool('p');
    renewNode(s, { name: 'a', address: 'a', running: 0, worker: '100@1' }, 0);
    blameNode(s, SETTINGS, 'a', 'node-lost', 1, 'job-1');
    blameNode(s, SETTINGS, 'a', 'node-lost', 2, 'job-2');
    expect(s.nodes.a.quarantine).toBeDefined();
    renewNode(s, { name: 'a', address: 'a', running: 0, worker: '100@1' }, 3);
    expect(s.nodes.a.quarantine).toBeDefined();
    renewNode(s, { name: 'a', address: 'a', running: 0, worker: '200@3' }, 4);
    expect(s.nodes.a.quarantine).toBeUndefined();
    expect(s.nodes.a.blames).toEqual([]);
    expect(grantedNodes(ask(s, req(1), 5))).toEqual(['a']);
  });

  it("one job's repeated faults on a node count once: quarantine needs faults of the machine in different jobs", () => {
    const s = pool('a');
    for (let at = 1; at <= 5; at++) expect(blameNode(s, SETTINGS, 'a', 'segfault', at, 'job-1')).toBe('counted');
    expect(s.nodes.a.quarantine).toBeUndefined();
    expect(blameNode(s, SETTINGS, 'a', 'segfault', 6, 'job-2')).toBe('quarantined');
    expect(s.nodes.a.quarantine?.reason).toContain('faults of the machine in 2 jobs within 60 min, last: segfault');
  });

  it('a pool run begun before blame evidence keeps its rules (blameEvidence false): replaying it grants exactly as it did', () => {
    const s = emptyPool('p');
    s.blameEvidence = false;
    for (const name of ['a', 'b']) renewNode(s, { name, address: name, running: 0, worker: `${name}@1` }, 0);
    // Each blame counts, whoever's: one job's two faults quarantine the node, and the quarantine keeps it out.
    blameNode(s, SETTINGS, 'a', 'node-lost', 1, 'job-1');
    expect(blameNode(s, SETTINGS, 'a', 'node-lost', 2, 'job-1')).toBe('quarantined');
    expect(s.nodes.a.quarantine?.reason).toContain('2 infrastructure failures');
    // A restarted worker clears nothing, and a node back from a silence has its quarantine again.
    renewNode(s, { name: 'a', address: 'a', running: 0, worker: 'a@2' }, 3);
    expect(s.nodes.a.quarantine).toBeDefined();
    removeNode(s, 'a', 'silent', 4);
    renewNode(s, { name: 'a', address: 'a', running: 0 }, 5);
    expect(s.nodes.a.quarantine).toBeDefined();
    const first = req(1);
    expect(grantedNodes(ask(s, first, 6))).toEqual(['b']);
    expect(grantedNodes(ask(s, req(1), 7))).toBeUndefined();
    // The same state under today's rules: the node quarantined on blames alone is granted, last.
    s.blameEvidence = true;
    schedule(s, 8);
    expect(Object.values(s.grants).map((g) => g.nodes)).toEqual([['b'], ['a']]);
  });

  it('a quarantine from before the evidence field counts as resting on blames, for granting and for a restart alike', () => {
    const s = pool('a', 'b', 'c');
    s.nodes.a.quarantine = { reason: 'old', since: 0, until: 600_000 };
    s.nodes.c.quarantine = { reason: 'old', since: 0, until: 600_000 };
    expect(grantedNodes(ask(s, req(1), 1))).toEqual(['b']);
    expect(grantedNodes(ask(s, req(1), 2))).toEqual(['a']);
    renewNode(s, { name: 'c', address: 'c', running: 0, worker: 'c@1' }, 3);
    renewNode(s, { name: 'c', address: 'c', running: 0, worker: 'c@2' }, 4);
    expect(s.nodes.c.quarantine).toBeUndefined();
  });

  it('a reclaimed node whose worker still runs the old trainer is not granted until it renews idle', () => {
    const s = pool('a');
    const r = req(1);
    ask(s, r);
    renewNode(s, { name: 'a', address: 'x', running: 1 }, 2);
    expect(reclaim(s, [r.holder.workflowId], 3)).toEqual([r.id]);
    const next = req(1);
    expect(grantedNodes(ask(s, next, 4))).toBeUndefined();
    renewNode(s, { name: 'a', address: 'x', running: 0 }, 5);
    schedule(s, 5);
    expect(grantedNodes(answerFor(s, next.id, 5))).toEqual(['a']);
  });

  it('reclaims only the requests there were when the check began (a new run under the same id keeps its own)', () => {
    const s = pool('a', 'b');
    const old = req(1);
    ask(s, old);
    const asked = requestIds(s);
    const fresh = { ...req(1), holder: old.holder };
    ask(s, fresh);
    expect(reclaim(s, [old.holder.workflowId], 5, asked)).toEqual([]);
    expect(Object.keys(s.grants)).toEqual([fresh.id]);
  });

  it('the pool away (the server down) is not its nodes silent: each gets a whole window again', () => {
    const s = pool('a');
    forgiveSilence(s, 100_000);
    expect(expireSilentNodes(s, SETTINGS, 100_000 + SETTINGS.nodeTimeoutMs)).toEqual([]);
    expect(expireSilentNodes(s, SETTINGS, 100_001 + SETTINGS.nodeTimeoutMs)).toEqual(['a']);
  });

  it("a workflow's newer request releases its older grant (one attempt at a time)", () => {
    const s = pool('a', 'b');
    const r = req(1);
    ask(s, r);
    const again = { ...req(1), holder: r.holder };
    expect(grantedNodes(ask(s, again))).toEqual(['a']);
    expect(Object.keys(s.grants)).toEqual([again.id]);
  });

  it('drain, undrain and release by an operator', () => {
    const s = pool('a', 'b');
    const r = req(1);
    ask(s, r);
    expect(nodeAction(s, 'drain', 'a', 2)).toContain('a drained: it finishes pipe');
    releaseRequest(s, r.id, 3);
    expect(grantedNodes(ask(s, req(2), 4))).toBeUndefined();
    expect(freeCount(describePool(s, SETTINGS, 4))).toBe(1);
    nodeAction(s, 'undrain', 'a', 5);
    schedule(s, 5);
    expect(Object.values(s.grants)[0].nodes).toEqual(['a', 'b']);
    expect(nodeAction(s, 'release', 'a', 6)).toContain('released the grant');
    expect(() => nodeAction(s, 'drain', 'zz', 7)).toThrow('node zz is not in pool p (known: a, b)');
  });
});
