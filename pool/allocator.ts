/**
 * The rules of a pool of nodes, as plain functions over plain data (the pool workflow holds the
 * state and calls these; perf/ drives them with simulated nodes). A node is granted to one request
 * at a time. Requests are served in the order they came; a later request may use only nodes the
 * requests ahead of it cannot use, so a large gang at the head is never starved by small ones.
 * Without run-time estimates (training runs end when they end) this is backfill in its safe form:
 * a free node the head could use is kept for the head.
 */

export interface PoolSettings {
  /** A node that has not renewed for this long has left the pool. */
  nodeTimeoutMs: number;
  /** Quarantined after this many infrastructure failures blamed on it within the window. */
  quarantineFailures: number;
  quarantineWindowMs: number;
  /** How long a quarantined node is not granted. */
  coolDownMs: number;
  /** How often the pool checks that the workflows holding its nodes still run. */
  reclaimIntervalMs: number;
  /** The pool's workflow continues as new after this many history events, carrying its state. */
  historyLimit: number;
}

export interface Quarantine {
  reason: string;
  since: number;
  until: number;
  /** What it rests on: the node's own health check failing, or faults blamed on it by jobs (undefined: before this field, counted as blames). */
  evidence?: 'health-check' | 'blames';
}

export interface PoolNode {
  name: string;
  /** Where the other nodes reach it: rank 0's address becomes the gang's master address. */
  address: string;
  joinedAt: number;
  lastSeen: number;
  /** Finishes what it runs, takes nothing new. */
  drained?: boolean;
  quarantine?: Quarantine;
  /** Faults of the machine blamed on it, within the quarantine window. */
  blames: number[];
  /** The job (pipeline workflow) of each blame, same order; a job's repeated faults count once. */
  blamedBy?: (string | null)[];
  /** The request whose grant holds it. */
  heldBy?: string;
  /** Commands its worker said it runs at its last renewal: a node running something no grant knows of is not granted. */
  running: number;
  /** The worker process that renews it (NodeRenewal.worker). */
  worker?: string;
}

/** Who asks: the pipeline's workflow and the attempt, for `linkflow nodes` and for reclaiming. */
export interface Holder {
  workflowId: string;
  pipeline: string;
  stage: string;
  attempt: number;
}

export interface NodeRequestInput {
  /** Stable across retries of the asking call: asking again answers the same request. */
  id: string;
  holder: Holder;
  count: number;
  /** Exactly these nodes (cluster.hosts), rank k on hosts[k]. */
  hosts?: string[];
  /** Nodes to use only when no other is free (the node that failed the previous attempt). */
  avoid?: string[];
}

export interface NodeRequest extends NodeRequestInput {
  seq: number;
  requestedAt: number;
}

export interface Grant {
  request: NodeRequest;
  /** Rank k on nodes[k]. */
  nodes: string[];
  grantedAt: number;
}

export interface PoolEvent {
  at: number;
  node?: string;
  what: string;
}

export interface PoolState {
  pool: string;
  nodes: Record<string, PoolNode>;
  queue: NodeRequest[];
  grants: Record<string, Grant>;
  nextSeq: number;
  /** The latest events (joins, leaves, quarantines, reclaims), newest last, bounded. */
  events: PoolEvent[];
  /** What a node that left keeps when it comes back (a worker restart ends neither its quarantine nor its drain). */
  departed?: Record<string, Pick<PoolNode, 'quarantine' | 'drained' | 'blames' | 'blamedBy'>>;
  /** When the pool next checks that its holders still run (kept across continue-as-new). */
  nextReclaimAt?: number;
  /**
   * false: the grant rules from before blame evidence (issue 17): every quarantine keeps its node
   * out, a job's repeated blames each count, a worker restart clears nothing. A pool run begun on that
   * code replays them to its end (workflows/pool.ts sets this from `patched`); undefined is true.
   */
  blameEvidence?: boolean;
}

export type AcquireAnswer =
  | { granted: { requestId: string; nodes: { name: string; address: string }[] } }
  | { queued: { requestId: string; position: number; waitingFor: string } }
  | { refused: string };

const MAX_EVENTS = 100;

export function emptyPool(pool: string): PoolState {
  return { pool, nodes: {}, queue: [], grants: {}, nextSeq: 1, events: [] };
}

function record(state: PoolState, event: PoolEvent): void {
  state.events.push(event);
  if (state.events.length > MAX_EVENTS) state.events.splice(0, state.events.length - MAX_EVENTS);
}

/** A node's worker says it is alive: it joins, or stays. */
export function renewNode(state: PoolState, node: { name: string; address: string; running: number; worker?: string }, now: number): void {
  const evidenced = state.blameEvidence !== false;
  const known = state.nodes[node.name];
  if (known) {
    known.lastSeen = now;
    known.address = node.address;
    known.running = node.running;
    if (!evidenced) return;
    if (node.worker && known.worker && node.worker !== known.worker) {
      // Its worker died and another took its place before the node timed out: as good as a rejoin.
      const dropped = known.blames.length;
      Object.assign(known, cleared(known));
      if (!known.quarantine) delete known.quarantine;
      record(state, { at: now, node: node.name, what: `its worker restarted; ${dropped} blame${dropped === 1 ? '' : 's'} cleared` });
    }
    if (node.worker) known.worker = node.worker;
    return;
  }
  // Back after a silence (its worker, or the server, was away): a grant that still names it holds it again,
  // and what it left with (a quarantine, a drain, its blames) it has again.
  const heldBy = Object.values(state.grants).find((g) => g.nodes.includes(node.name))?.request.id;
  const departed = state.departed?.[node.name];
  const kept = departed && evidenced ? cleared(departed) : departed;
  if (state.departed?.[node.name]) delete state.departed[node.name];
  state.nodes[node.name] = {
    name: node.name,
    address: node.address,
    joinedAt: now,
    lastSeen: now,
    blames: [],
    running: node.running,
    ...(node.worker && evidenced ? { worker: node.worker } : {}),
    ...kept,
    ...(heldBy ? { heldBy } : {}),
  };
  record(state, { at: now, node: node.name, what: `joined (${node.address})${heldBy ? `, still held by ${heldBy}` : ''}` });
}

/**
 * A worker that died and came back is not a bad machine: what it left with besides a drain and a
 * failed health check (the blames of its jobs and the quarantine they caused) is dropped, and the
 * health check before its next rank (when one is configured) is the evidence that counts.
 */
function cleared(kept: Pick<PoolNode, 'quarantine' | 'drained' | 'blames' | 'blamedBy'>): Pick<PoolNode, 'quarantine' | 'drained' | 'blames' | 'blamedBy'> {
  const { quarantine, drained } = kept;
  return { drained, quarantine: quarantine && !onBlames(quarantine) ? quarantine : undefined, blames: [], blamedBy: [] };
}

/** A quarantine that rests on jobs' blames alone; one from before the `evidence` field counts as such. */
function onBlames(quarantine: Quarantine): boolean {
  return (quarantine.evidence ?? 'blames') === 'blames';
}

/** A node leaves (its worker shut down, or it went silent): what it held is released; the attempt on it fails on its own. */
export function removeNode(state: PoolState, name: string, why: string, now: number): boolean {
  const node = state.nodes[name];
  if (!node) return false;
  delete state.nodes[name];
  if (node.drained || node.blames.length > 0 || (node.quarantine && node.quarantine.until > now)) {
    state.departed = { ...state.departed, [name]: { quarantine: node.quarantine, drained: node.drained, blames: node.blames, blamedBy: node.blamedBy } };
  }
  record(state, { at: now, node: name, what: `left: ${why}` });
  return true;
}

/**
 * The pool itself was away (the server was down): its nodes could not renew meanwhile, so each gets a
 * whole window from now before it counts as silent.
 */
export function forgiveSilence(state: PoolState, now: number): void {
  for (const n of Object.values(state.nodes)) n.lastSeen = Math.max(n.lastSeen, now);
}

/** Nodes silent for longer than the window leave the pool. */
export function expireSilentNodes(state: PoolState, settings: PoolSettings, now: number): string[] {
  const silent = Object.values(state.nodes).filter((n) => now - n.lastSeen > settings.nodeTimeoutMs);
  for (const n of silent) removeNode(state, n.name, `silent for ${Math.round((now - n.lastSeen) / 1000)} s`, now);
  return silent.map((n) => n.name);
}

/** Quarantines whose cool-down is over end; returns the nodes that came back. */
export function endQuarantines(state: PoolState, now: number): string[] {
  const back = Object.values(state.nodes).filter((n) => n.quarantine && n.quarantine.until <= now);
  for (const n of back) {
    record(state, { at: now, node: n.name, what: `back from quarantine (${n.quarantine!.reason})` });
    n.quarantine = undefined;
    n.blames = [];
    n.blamedBy = [];
  }
  return back.map((n) => n.name);
}

export function quarantineNode(
  state: PoolState,
  settings: PoolSettings,
  name: string,
  reason: string,
  now: number,
  evidence: Quarantine['evidence'] = 'health-check',
): boolean {
  const node = state.nodes[name];
  if (!node) return false;
  node.quarantine = { reason, since: now, until: now + settings.coolDownMs, evidence };
  record(state, { at: now, node: name, what: `quarantined until ${new Date(node.quarantine.until).toISOString()}: ${reason}` });
  return true;
}

/**
 * A fault of the machine blamed on a node (failures/blame.ts decides which are). Faults of as many
 * different jobs as `quarantineFailures` within the window quarantine it: one job failing again and
 * again on a node is more likely that job than the machine. A blame without a job counts on its own.
 */
export function blameNode(
  state: PoolState,
  settings: PoolSettings,
  name: string,
  reason: string,
  now: number,
  job?: string,
): 'quarantined' | 'counted' | 'unknown' {
  const node = state.nodes[name];
  if (!node) return 'unknown';
  // Before blame evidence every blame counted on its own (a pool run begun on that code replays it so).
  if (state.blameEvidence === false) job = undefined;
  const jobs = node.blamedBy ?? node.blames.map(() => null);
  const recent = node.blames.map((at, i) => ({ at, job: jobs[i] ?? null })).filter((b) => now - b.at < settings.quarantineWindowMs);
  recent.push({ at: now, job: job ?? null });
  node.blames = recent.map((b) => b.at);
  node.blamedBy = recent.map((b) => b.job);
  const distinct = new Set(recent.map((b, i) => b.job ?? `#${i}`)).size;
  if (distinct < settings.quarantineFailures || node.quarantine) return 'counted';
  const window = Math.round(settings.quarantineWindowMs / 60_000);
  const what = recent.some((b) => b.job) ? `faults of the machine in ${distinct} jobs` : `${distinct} infrastructure failures`;
  quarantineNode(state, settings, name, `${what} within ${window} min, last: ${reason}`, now, 'blames');
  return 'quarantined';
}

/** Free to grant now: alive, not drained, not quarantined, held by nobody, running nothing (a worker back after a silence may still run its old rank). */
export function grantable(node: PoolNode, now: number, blameEvidence = true): boolean {
  const out = node.quarantine && node.quarantine.until > now && !(blameEvidence && onBlames(node.quarantine));
  return !node.drained && !node.heldBy && node.running === 0 && !out;
}

/**
 * Quarantined on jobs' blames alone, not on its own health check: granted only when no other node is
 * free, so a queue never waits behind a node that passes its checks (its health check, when one is
 * configured, runs before a rank starts there and quarantines it for good if it fails).
 */
function suspect(node: PoolNode | undefined, now: number): boolean {
  return node?.quarantine !== undefined && onBlames(node.quarantine) && node.quarantine.until > now;
}

/** Could this request ever be served by the pool as it is (drained nodes do not count; quarantined ones come back)? */
function feasible(state: PoolState, request: NodeRequest): boolean {
  const usable = (name: string) => state.nodes[name] !== undefined && !state.nodes[name].drained;
  if (request.hosts) return request.hosts.every(usable);
  return Object.keys(state.nodes).filter(usable).length >= request.count;
}

/** Pick the request's nodes from the free ones: the named hosts in order, else the free nodes it does not avoid first. */
function pick(request: NodeRequest, free: Set<string>, state: PoolState, now: number): string[] | undefined {
  if (request.hosts) return request.hosts.every((h) => free.has(h)) ? [...request.hosts] : undefined;
  if (free.size < request.count) return undefined;
  const avoid = new Set(request.avoid ?? []);
  const evidenced = state.blameEvidence !== false;
  const rank = (n: string) => (evidenced && suspect(state.nodes[n], now) ? 2 : avoid.has(n) ? 1 : 0);
  return [...free]
    .sort()
    .sort((a, b) => rank(a) - rank(b))
    .slice(0, request.count);
}

/**
 * Serves the queue in order. A request that cannot be served keeps the free nodes it could use
 * (so nothing behind it delays it); requests the pool cannot serve at all keep nothing.
 * Returns the grants made.
 */
export function schedule(state: PoolState, now: number): Grant[] {
  const free = freeNodes(state, now);
  const made: Grant[] = [];
  for (const request of [...state.queue]) {
    if (free.size === 0) break;
    const nodes = pick(request, free, state, now);
    if (nodes) {
      made.push(grant(state, request, nodes, now));
      nodes.forEach((n) => free.delete(n));
    } else keepFor(state, request, free);
  }
  return made;
}

function freeNodes(state: PoolState, now: number): Set<string> {
  return new Set(
    Object.values(state.nodes)
      .filter((n) => grantable(n, now, state.blameEvidence !== false))
      .map((n) => n.name),
  );
}

/** A request that cannot be served now keeps the free nodes it could use (none when the pool cannot ever serve it). */
function keepFor(state: PoolState, request: NodeRequest, free: Set<string>): void {
  if (feasible(state, request)) for (const n of request.hosts ?? [...free]) free.delete(n);
}

/** The free nodes that the requests ahead of this one keep for themselves. */
function keptAhead(state: PoolState, request: NodeRequest, now: number): Set<string> {
  const free = freeNodes(state, now);
  const all = new Set(free);
  for (const ahead of state.queue) {
    if (ahead.id === request.id) break;
    keepFor(state, ahead, free);
  }
  return new Set([...all].filter((n) => !free.has(n)));
}

function grant(state: PoolState, request: NodeRequest, nodes: string[], now: number): Grant {
  const g: Grant = { request, nodes, grantedAt: now };
  state.grants[request.id] = g;
  state.queue = state.queue.filter((r) => r.id !== request.id);
  for (const n of nodes) state.nodes[n].heldBy = request.id;
  return g;
}

/**
 * Puts a request in the queue (then `schedule` serves it). Asking again with the same id is the
 * same request: it keeps its grant or its place. A workflow runs one attempt at a time, so its
 * older grants and requests are stale and released. Returns what is wrong with a bad request.
 */
export function enqueueRequest(state: PoolState, input: NodeRequestInput, now: number): string | undefined {
  const problem = badRequest(input);
  if (problem) return problem;
  if (!state.grants[input.id] && !state.queue.some((r) => r.id === input.id)) {
    releaseStale(state, input, now);
    state.queue.push({ ...input, seq: state.nextSeq++, requestedAt: now });
  }
  return undefined;
}

function badRequest(input: NodeRequestInput): string | undefined {
  if (!Number.isInteger(input.count) || input.count < 1) return `a request needs at least one node (got ${input.count})`;
  if (input.hosts && input.hosts.length !== input.count) return `names ${input.hosts.length} hosts for ${input.count} nodes`;
  if (input.hosts && new Set(input.hosts).size !== input.hosts.length) return 'names a host twice';
  return undefined;
}

function releaseStale(state: PoolState, input: NodeRequestInput, now: number): void {
  const stale = [...Object.values(state.grants).map((g) => g.request), ...state.queue].filter(
    (r) => r.holder.workflowId === input.holder.workflowId && r.id !== input.id,
  );
  for (const r of stale) releaseRequest(state, r.id, now, `superseded by ${input.id}`);
}

/** The grant or place in the queue of a request. */
export function answerFor(state: PoolState, id: string, now: number): AcquireAnswer {
  const g = state.grants[id];
  if (g) return { granted: { requestId: id, nodes: g.nodes.map((n) => ({ name: n, address: state.nodes[n]?.address ?? n })) } };
  const index = state.queue.findIndex((r) => r.id === id);
  if (index < 0) return { refused: `request ${id} is neither queued nor granted (released or reclaimed)` };
  return { queued: { requestId: id, position: index + 1, waitingFor: waitingFor(state, state.queue[index], now) } };
}

/** Why a queued request waits, in a user's words. */
export function waitingFor(state: PoolState, request: NodeRequest, now: number): string {
  const names = request.hosts ?? Object.keys(state.nodes).sort();
  const kept = keptAhead(state, request, now);
  const busy = (n: string) => {
    if (kept.has(n)) return `${n} kept for a request ahead`;
    const node = state.nodes[n];
    if (!node) return `${n} not in the pool`;
    if (node.drained) return `${n} drained`;
    if (node.quarantine && node.quarantine.until > now) return `${n} quarantined`;
    if (node.heldBy) return `${n} running ${holderName(state, node.heldBy)}`;
    if (node.running > 0) return `${n} busy with a command no grant knows of`;
    return undefined;
  };
  const reasons = names.map(busy).filter((r): r is string => r !== undefined);
  const free = names.length - reasons.length;
  const what = request.hosts ? `hosts ${request.hosts.join(', ')}` : `${request.count} node${request.count === 1 ? '' : 's'}`;
  const shown = reasons.slice(0, 4).join('; ') + (reasons.length > 4 ? `; ${reasons.length - 4} more` : '');
  const never = feasible(state, request) ? '' : `; more than the pool has in service: it waits for nodes to join`;
  return `${what}; ${free} free of ${Object.keys(state.nodes).length}${reasons.length ? ` (${shown})` : ''}${never}`;
}

function holderName(state: PoolState, requestId: string): string {
  const h = state.grants[requestId]?.request.holder;
  return h ? `${h.pipeline}/${h.stage} attempt ${h.attempt}` : requestId;
}

/**
 * The attempt ended (or its request is withdrawn): its nodes are free again. `processesGone`: the
 * holder itself released after its attempt's processes ended; otherwise (reclaimed, superseded, an
 * operator) its trainer may still be stopping, and the node stays busy until its worker renews idle.
 */
export function releaseRequest(state: PoolState, id: string, now: number, why?: string, processesGone = false): boolean {
  const g = state.grants[id];
  const queued = state.queue.some((r) => r.id === id);
  if (!g && !queued) return false;
  state.queue = state.queue.filter((r) => r.id !== id);
  if (g) {
    delete state.grants[id];
    // The holder releases once its processes are gone (cancelling waits for the kill): free now, not at the next renewal.
    for (const n of g.nodes) if (state.nodes[n]?.heldBy === id) Object.assign(state.nodes[n], { heldBy: undefined, ...(processesGone ? { running: 0 } : {}) });
    if (why) record(state, { at: now, what: `released ${g.nodes.join(', ')} of ${holderName({ ...state, grants: { [id]: g } }, id)}: ${why}` });
  }
  return true;
}

/**
 * A grant that could not start (a node failed its health check): its nodes are released and the
 * request goes back to its place in the queue, to be served by other nodes.
 */
export function requeueRequest(state: PoolState, id: string, now: number): boolean {
  const g = state.grants[id];
  if (!g) return false;
  // Released by its holder before any rank started there.
  releaseRequest(state, id, now, undefined, true);
  state.queue.push(g.request);
  state.queue.sort((a, b) => a.seq - b.seq);
  return true;
}

/** The workflows that hold grants or wait in the queue: the pool checks that they still run. */
export function holders(state: PoolState): string[] {
  const ids = [...Object.values(state.grants).map((g) => g.request.holder.workflowId), ...state.queue.map((r) => r.holder.workflowId)];
  return [...new Set(ids)].sort();
}

/** The requests (granted or queued) the pool has now. */
export function requestIds(state: PoolState): Set<string> {
  return new Set([...Object.keys(state.grants), ...state.queue.map((r) => r.id)]);
}

/**
 * Grants and requests of workflows that no longer run are reclaimed: only those of `among` (the
 * requests there were when the check began; a new run under the same workflow id asks anew meanwhile).
 */
export function reclaim(state: PoolState, closedWorkflows: string[], now: number, among: Set<string> = requestIds(state)): string[] {
  const closed = new Set(closedWorkflows);
  const ids = [...Object.values(state.grants).map((g) => g.request), ...state.queue]
    .filter((r) => closed.has(r.holder.workflowId) && among.has(r.id))
    .map((r) => r.id);
  for (const id of ids) releaseRequest(state, id, now, 'its workflow no longer runs (reclaimed)');
  return ids;
}

export type NodeAction = 'drain' | 'undrain' | 'release';

/** An operator's action on a node; returns what happened, or throws with what to do instead. */
export function nodeAction(state: PoolState, action: NodeAction, name: string, now: number): string {
  const node = state.nodes[name];
  if (!node) throw new Error(`node ${name} is not in pool ${state.pool} (known: ${Object.keys(state.nodes).sort().join(', ') || 'none'})`);
  if (action === 'drain') {
    node.drained = true;
    record(state, { at: now, node: name, what: 'drained by an operator' });
    return node.heldBy ? `${name} drained: it finishes ${holderName(state, node.heldBy)}, then takes nothing new` : `${name} drained: it takes nothing new`;
  }
  if (action === 'undrain') {
    node.drained = false;
    record(state, { at: now, node: name, what: 'undrained by an operator' });
    return `${name} takes work again`;
  }
  const held = node.heldBy;
  node.quarantine = undefined;
  node.blames = [];
  node.blamedBy = [];
  if (held) releaseRequest(state, held, now, `released by an operator on ${name}`);
  record(state, { at: now, node: name, what: 'released by an operator' });
  return held ? `${name}: released the grant of ${held} and cleared its quarantine` : `${name}: nothing held; quarantine cleared`;
}

/** The soonest moment something changes by itself (a node goes silent, a quarantine ends). */
export function nextDeadline(state: PoolState, settings: PoolSettings): number | undefined {
  const times = Object.values(state.nodes).flatMap((n) => [n.lastSeen + settings.nodeTimeoutMs + 1, ...(n.quarantine ? [n.quarantine.until] : [])]);
  return times.length ? Math.min(...times) : undefined;
}
