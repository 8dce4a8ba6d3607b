/**
 * An attempt as one gang of pods, seen by the watcher as it sees a process (exited, kill with a
 * grace, setGrace). Submit or adopt: a gang of this stage still there (its worker died) is followed
 * to its end when it runs the same work (its fingerprint), else deleted before a new one is made, so
 * a stage never has two gangs. Follow: the gang's pods, nodes, controller and events are read from the
 * API every second (gangPhase in ../endings.ts decides queued / running / ended); every rank's log is
 * streamed into the attempt log. Stop: the controller is orphaned (so nothing recreates a pod) and
 * the pods are deleted with the stop grace: the kubelet sends SIGTERM to the launcher, SIGKILL after
 * the grace. Whatever the ending, the gang leaves nothing behind: controller, pods, Service,
 * PodGroup and the attempt's Secret are deleted.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ExitStatus } from '../../../common/exit-status.ts';
import type { Launch } from '../../../frameworks/launch.ts';
import type { ScheduledAttempt } from '../../executor.ts';
import { trackProcess } from '../../nodes/io/process-group.ts';
import { gangPhase, podView, type GangEnding, type GangPhase, type GangView } from '../endings.ts';
import { gangManifests, type KubeObject } from '../manifests.ts';
import { ANNOTATION, gangLabels, gangName, LABEL, stageSelector, type KubernetesSettings } from '../plan.ts';
import { KubeApi, KubeApiError } from './api.ts';
import { controllerOf, objectPath, type Controller } from './kinds.ts';

const POLL_MS = 1000;
/** After a rank fails, how long the API gets to say that a node went away under the gang (that ending wins). */
const SETTLE_MS = 8000;

export interface KubernetesGangOptions {
  pipeline: string;
  stageName: string;
  attempt: number;
  settings: KubernetesSettings;
  launch: Launch;
  command: string[];
  cwd: string;
  env: Record<string, string>;
  secretEnv: Record<string, string>;
  setupScript?: string;
  logFile: string;
  graceMs?: number;
  /** Identifies the stage's work: a gang found running is adopted only when it matches. */
  fingerprint: string;
  avoid?: string[];
  usesDevices: boolean;
  /** Every log line of every rank, masked. */
  onLine: (line: string) => void;
  mask: (line: string) => string;
  onRunning: () => void;
  onWait: () => void;
  /** A window of one rank's lines (the watcher's kind): the first rank to fail is classified from its own. */
  rankWindow?: () => { push(line: string): void; lines(): string[] };
}

export interface KubernetesGangEnd {
  name: string;
  namespace: string;
  ending: GangEnding;
  nodes: string[];
  stoppedByUs: boolean;
  adopted: boolean;
  /** The ranks that failed on their own, first to fail first (to the second: ties are common), each with its own lines. */
  failedRanks?: { pod: string; lines: string[] }[];
}

export type KubernetesGang = ScheduledAttempt<KubernetesGangEnd>;

export async function startKubernetesGang(o: KubernetesGangOptions): Promise<KubernetesGang> {
  const api = KubeApi.fromEnvironment();
  const ns = o.settings.namespace;
  const controller = controllerOf(o.settings.flavour);
  const note = (line: string) => fs.appendFileSync(o.logFile, `# kubernetes: ${line}\n`);
  const found = await earlierGangs(api, controller, o);
  const same = found
    .filter((g) => g.metadata.annotations?.[ANNOTATION.fingerprint] === o.fingerprint)
    .sort(byAttempt)
    .at(-1);
  // A gang that has already ended is not adopted (its ending was its own attempt's): as Slurm skips ended jobs.
  const adoptable = same && !(await gangEnded(api, o, controller, same.metadata.name)) ? same : undefined;
  for (const g of found.filter((x) => x !== adoptable)) {
    note(`deleting gang ${g.metadata.name} of an earlier attempt of this stage (${g === same ? 'it has ended' : 'it runs other work'})`);
    await deleteGang(api, ns, controller, g.metadata.name, 0);
  }
  await deleteLeftovers(api, ns, stageSelector(o.pipeline, o.stageName), adoptable?.metadata.name).catch((e: Error) =>
    note(`deleting Secrets and Services of earlier attempts of this stage: ${e.message}`),
  );
  await waitGone(
    api,
    o,
    found.filter((x) => x !== adoptable).map((g) => g.metadata.name),
  );
  if (adoptable) {
    const name = adoptable.metadata.name;
    note(`adopting gang ${name} of attempt ${adoptable.metadata.labels?.[LABEL.attempt] ?? '?'} (its worker is gone); following it to its end`);
    return follow(api, o, controller, name, true);
  }
  const name = gangName(o.pipeline, o.stageName, o.attempt);
  const dir = o.logFile.replace(/\.log$/, '') + '.k8s';
  fs.mkdirSync(dir, { recursive: true });
  const secretName = Object.keys(o.secretEnv).length ? `${name}-env` : undefined;
  const avoid = await stillLost(api, o.avoid ?? []);
  const back = (o.avoid ?? []).filter((n) => !avoid.includes(n));
  if (back.length) note(`node ${back.join(', ')}, lost by an earlier attempt, is Ready again: not left out`);
  const podGroups = o.settings.flavour === 'pods' && o.settings.gangScheduling === 'auto' && (await api.serves('scheduling.k8s.io/v1beta1', 'podgroups'));
  const objects = gangManifests({
    settings: o.settings,
    pipeline: o.pipeline,
    stage: o.stageName,
    attempt: o.attempt,
    launch: o.launch,
    command: o.command,
    cwd: o.cwd,
    env: o.env,
    setupScript: o.setupScript,
    secretName,
    stopGraceSeconds: Math.max(1, Math.ceil((o.graceMs ?? 30_000) / 1000)),
    avoidNodes: avoid,
    usesDevices: o.usesDevices,
    podGroups,
    rendezvousFile: path.join(dir, 'rendezvous'),
    fingerprint: o.fingerprint,
  });
  fs.writeFileSync(path.join(dir, 'manifests.json'), JSON.stringify(objects, null, 2) + '\n');
  try {
    if (secretName) await api.create(`/api/v1/namespaces/${ns}/secrets`, secretObject(o, secretName));
    for (const obj of objects) {
      await api.create(objectPath(obj, ns, false), obj);
      note(`created ${obj.kind} ${ns}/${obj.metadata.name}`);
    }
  } catch (err) {
    await deleteGang(api, ns, controller, name, 0).catch(() => undefined);
    if (err instanceof KubeApiError && err.status >= 400 && err.status < 500 && err.status !== 409)
      throw new GangRejected(`the cluster refused the gang: ${err.message}`);
    throw err;
  }
  if (avoid.length) note(`leaving out node ${avoid.join(', ')}, lost by an earlier attempt`);
  return follow(api, o, controller, name, false);
}

/** Deletes every gang of a stage (its work is done: the stage's output is there). */
export async function deleteStageGangs(o: Pick<KubernetesGangOptions, 'pipeline' | 'stageName' | 'settings' | 'logFile'>): Promise<void> {
  const api = KubeApi.fromEnvironment();
  const controller = controllerOf(o.settings.flavour);
  for (const g of await earlierGangs(api, controller, o)) {
    fs.appendFileSync(o.logFile, `# kubernetes: deleting gang ${g.metadata.name} of an earlier attempt (its work is done)\n`);
    await deleteGang(api, o.settings.namespace, controller, g.metadata.name, 1);
  }
  api.close();
}

/** The API refused the gang's objects (validation, admission, quota): no retry makes it accept them. */
export class GangRejected extends Error {}

function byAttempt(a: KubeObject, b: KubeObject): number {
  return Number(a.metadata.labels?.[LABEL.attempt] ?? 0) - Number(b.metadata.labels?.[LABEL.attempt] ?? 0);
}

async function earlierGangs(
  api: KubeApi,
  controller: Controller,
  o: Pick<KubernetesGangOptions, 'pipeline' | 'stageName' | 'settings'>,
): Promise<KubeObject[]> {
  const list = await api
    .get<{ items: KubeObject[] }>(controller.collection(o.settings.namespace), { labelSelector: stageSelector(o.pipeline, o.stageName) })
    .catch((e: unknown) => {
      // No such kind: its CRD (Volcano, MindCluster's ascend-operator) is not installed; no retry installs it.
      if (e instanceof KubeApiError && e.status === 404 && !/namespaces? ".*" not found/.test(e.apiMessage))
        throw new GangRejected(
          `the cluster does not serve ${controller.kind} (flavour ${o.settings.flavour}): install its controller and CRD, or choose another cluster.kubernetes.flavour`,
        );
      throw e;
    });
  return list.items.filter((g) => g.metadata.annotations?.[ANNOTATION.pipeline] === o.pipeline && g.metadata.annotations?.[ANNOTATION.stage] === o.stageName);
}

function secretObject(o: KubernetesGangOptions, name: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: o.settings.namespace, labels: gangLabels(o.pipeline, o.stageName, o.attempt) },
    type: 'Opaque',
    stringData: o.secretEnv,
  };
}

/** Waits (heartbeating) until the named gangs' pods are gone: a new gang never runs beside an old one. */
async function waitGone(api: KubeApi, o: KubernetesGangOptions, names: string[]): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (const name of names) {
    for (;;) {
      const pods = await api.get<{ items: unknown[] }>(`/api/v1/namespaces/${o.settings.namespace}/pods`, { labelSelector: `${LABEL.gang}=${name}` });
      if (pods.items.length === 0) break;
      // Never a second gang beside one that may still write the save directory: this attempt fails, a later one looks again.
      if (Date.now() > deadline) {
        const why = `${pods.items.length} pod(s) of gang ${name} (an earlier attempt of stage ${o.stageName}) still exist 300 s after it was deleted; not starting another gang beside them (check \`kubectl -n ${o.settings.namespace} get pods -l ${LABEL.gang}=${name}\`)`;
        fs.appendFileSync(o.logFile, `# ${why}\n`);
        throw new Error(why);
      }
      o.onWait();
      await sleep(POLL_MS);
    }
  }
}

/**
 * Deletes a gang: the controller first, orphaning its pods (nothing recreates them), then the pods
 * with the grace (the kubelet's SIGTERM, SIGKILL after it); the Service, PodGroup and Secret each on
 * their own, so that one failing call leaves none of the others (the Secret holds secretEnv values).
 */
export async function deleteGang(api: KubeApi, ns: string, controller: Controller, name: string, graceSeconds: number): Promise<void> {
  // The ranks first (as before: the controller's orphaning has begun when the rest goes), the rest whatever happened to them.
  const ranks = await Promise.allSettled([deleteRanks(api, ns, controller, name, graceSeconds)]);
  const results = await Promise.allSettled([
    api.delete(`/api/v1/namespaces/${ns}/services/${name}`),
    api.delete(`/apis/scheduling.k8s.io/v1beta1/namespaces/${ns}/podgroups/${name}`).catch(() => undefined),
    api.delete(`/api/v1/namespaces/${ns}/secrets/${name}-env`),
  ]);
  const failed = [...ranks, ...results].flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (failed.length) throw new Error(failed.join('; '));
}

async function deleteRanks(api: KubeApi, ns: string, controller: Controller, name: string, graceSeconds: number): Promise<void> {
  await api.delete(controller.path(ns, name), { propagationPolicy: 'Orphan' });
  const pods = await api.get<{ items: (KubeObject & { spec?: { nodeName?: string } })[] }>(`/api/v1/namespaces/${ns}/pods`, {
    labelSelector: `${LABEL.gang}=${name}`,
  });
  const lost = await lostNodes(
    api,
    pods.items.map((p) => p.spec?.nodeName),
  );
  await Promise.all(
    pods.items.map((p) =>
      api.delete(`/api/v1/namespaces/${ns}/pods/${p.metadata.name}`, {
        // A rank on a lost node: its kubelet can no longer confirm the deletion, so it is forced (as kubectl delete --force);
        // if the node comes back, its kubelet finds the pod gone and kills the container.
        gracePeriodSeconds: p.spec?.nodeName && lost.has(p.spec.nodeName) ? 0 : Math.max(1, graceSeconds),
      }),
    ),
  );
}

async function gangEnded(api: KubeApi, o: KubernetesGangOptions, controller: Controller, name: string): Promise<boolean> {
  const view = await gangView(api, o.settings.namespace, controller, name, o.launch.kind === 'torchrun' ? o.launch.nnodes : 1, false);
  return gangPhase(view.gang).phase === 'ended';
}

/** The Secrets and Services of a stage's earlier attempts whose controller is gone (a cleanup cut short): all but the adopted gang's. */
async function deleteLeftovers(api: KubeApi, ns: string, selector: string, keep: string | undefined): Promise<void> {
  for (const kind of ['secrets', 'services']) {
    const list = await api.get<{ items: KubeObject[] }>(`/api/v1/namespaces/${ns}/${kind}`, { labelSelector: selector });
    const stale = list.items.filter((x) => keep === undefined || x.metadata.labels?.[LABEL.gang] !== keep);
    await Promise.allSettled(stale.map((x) => api.delete(`/api/v1/namespaces/${ns}/${kind}/${x.metadata.name}`)));
  }
}

function follow(api: KubeApi, o: KubernetesGangOptions, controller: Controller, name: string, adopted: boolean): KubernetesGang {
  const ns = o.settings.namespace;
  let last: GangPhase | undefined;
  let running = false;
  let stoppedByUs = false;
  let graceMs = o.graceMs ?? 30_000;
  let stopping: Promise<void> | undefined;
  const streams = new LogStreams(api, ns, o);

  let lastView: GangView | undefined;
  const ended = (async (): Promise<KubernetesGangEnd> => {
    let failedAt: number | undefined;
    let errors = 0;
    for (;;) {
      let view: { gang: GangView; podNames: string[] };
      try {
        view = await gangView(api, ns, controller, name, o.launch.kind === 'torchrun' ? o.launch.nnodes : 1, stopping !== undefined);
        errors = 0;
      } catch (err) {
        // The API away for a minute: the gang is not ours to judge; say so and end the attempt.
        if (++errors > 60) {
          last = {
            phase: 'ended',
            nodes: [],
            ending: { kind: 'class', class: 'node-lost', reason: `the Kubernetes API did not answer for a minute: ${(err as Error).message}`, retryable: true },
          };
          break;
        }
        await sleep(POLL_MS);
        continue;
      }
      streams.follow(view.podNames);
      lastView = view.gang;
      let phase = gangPhase(view.gang);
      if (stopping && !(phase.phase === 'ended' && phase.ending.kind === 'class')) {
        // Stopped by us: ended when every rank has (a clean stop save exits 0); a lost node still says so.
        const nodes = [...new Set(view.gang.pods.map((p) => p.nodeName).filter((n): n is string => !!n))];
        const live = view.gang.pods.filter((p) => p.phase !== 'Succeeded' && p.phase !== 'Failed');
        phase =
          live.length > 0
            ? { phase: 'running', nodes }
            : { phase: 'ended', nodes: nodes.length ? nodes : last && 'nodes' in last ? last.nodes : [], ending: stopExit(view.gang) };
      }
      last = phase;
      if (phase.phase !== 'queued' && !running) {
        running = true;
        o.onRunning();
      }
      if (phase.phase === 'ended') {
        // A rank's own failure may be an echo of a node going away: give the API a moment to say so.
        const ownExit = phase.ending.kind === 'exit' && phase.ending.exitCode !== 0 && !stopping;
        if (!ownExit || Date.now() - (failedAt ??= Date.now()) >= SETTLE_MS) break;
      }
      await sleep(POLL_MS);
    }
    const end = last as Extract<GangPhase, { phase: 'ended' }>;
    // The ranks still running after a failure, and everything of the gang: gone.
    await deleteGang(api, ns, controller, name, 1).catch((e: Error) => fs.appendFileSync(o.logFile, `# kubernetes: cleaning up gang ${name}: ${e.message}\n`));
    // The attempt ends when its ranks are gone (those of a lost node cannot run, and may stay Terminating): the next gang never overlaps them.
    await podsGone(api, ns, name, 30_000).catch(() => undefined);
    await streams.close(10_000);
    fs.appendFileSync(o.logFile, `# kubernetes: gang ${name} ended: ${describe(end.ending)}${end.nodes.length ? ` (nodes ${end.nodes.join(', ')})` : ''}\n`);
    const failedRanks = (lastView?.pods ?? [])
      .filter((p) => p.phase === 'Failed' && p.terminated && p.terminated.exitCode !== 0)
      .sort((a, b) => (a.terminated!.finishedAt ?? '').localeCompare(b.terminated!.finishedAt ?? ''))
      .map((p) => ({ pod: p.name, lines: streams.linesOf(p.name) ?? [] }))
      .filter((r) => r.lines.length > 0);
    return { name, namespace: ns, ending: end.ending, nodes: end.nodes, stoppedByUs, adopted, ...(failedRanks.length ? { failedRanks } : {}) };
  })();

  const exited: Promise<ExitStatus> = ended.then((e) =>
    e.ending.kind === 'exit' ? { exitCode: e.ending.exitCode, signal: e.ending.signal } : { exitCode: null, signal: 'SIGKILL' as NodeJS.Signals },
  );
  const gang: KubernetesGang = {
    pid: -1,
    id: name,
    ended,
    exited,
    queuedNote: () => (last?.phase === 'queued' ? `${last.note} (gang ${ns}/${name})` : undefined),
    async kill(ms = graceMs) {
      stoppedByUs = true;
      stopping ??= deleteGang(api, ns, controller, name, Math.ceil(ms / 1000)).catch(() => undefined);
      await stopping;
      await exited;
    },
    setGrace(ms) {
      graceMs = ms;
    },
  };
  // The gang runs on the cluster's nodes: a drain of this worker stops it, but this node is not busy with it.
  trackProcess(gang, 'elsewhere');
  return gang;
}

/** After our stop: the ranks' exits (all 0: a clean stop; gone before we saw them: the stop's SIGTERM). */
function stopExit(gang: GangView): GangEnding {
  if (gang.pods.length > 0 && gang.pods.every((p) => p.phase === 'Succeeded')) return { kind: 'exit', exitCode: 0, signal: null };
  const failed = gangPhase({ ...gang, gone: false });
  return failed.phase === 'ended' ? failed.ending : { kind: 'exit', exitCode: null, signal: 'SIGTERM' };
}

function describe(e: GangEnding): string {
  return e.kind === 'class' ? `${e.class}: ${e.reason}` : e.signal ? `killed by ${e.signal}` : `exit code ${e.exitCode}`;
}

/** Which of these nodes are NotReady or deleted. */
async function lostNodes(api: KubeApi, names: (string | undefined)[]): Promise<Set<string>> {
  const lost = new Set<string>();
  for (const n of new Set(names.filter((x): x is string => !!x))) {
    const node = await api.find<{ status?: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${n}`);
    if (!node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) lost.add(n);
  }
  return lost;
}

/**
 * Of the nodes earlier attempts lost, those still not Ready or absent (one list of the nodes): a node
 * back in service is no longer left out, so a retry cannot stay unschedulable for good. When the
 * nodes cannot be listed, all stay left out.
 */
async function stillLost(api: KubeApi, avoid: string[]): Promise<string[]> {
  if (avoid.length === 0) return [];
  const nodes = await api
    .get<{ items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }>('/api/v1/nodes')
    .catch(() => undefined);
  if (!nodes) return avoid;
  const ready = new Set(nodes.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata.name));
  return avoid.filter((n) => !ready.has(n));
}

/** Waits up to `ms` until the gang's pods are gone, but for those on a node that is not Ready. */
async function podsGone(api: KubeApi, ns: string, name: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const pods = await api.get<{ items: { spec?: { nodeName?: string } }[] }>(`/api/v1/namespaces/${ns}/pods`, { labelSelector: `${LABEL.gang}=${name}` });
    let live = 0;
    for (const p of pods.items) {
      const node = p.spec?.nodeName
        ? await api.find<{ status?: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${p.spec.nodeName}`)
        : undefined;
      if (!p.spec?.nodeName || node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) live++;
    }
    if (live === 0) return;
    await sleep(500);
  }
}

/** One look at the gang: its pods, their nodes, its controller's conditions, its warning events. */
async function gangView(
  api: KubeApi,
  ns: string,
  controller: Controller,
  name: string,
  expected: number,
  stopping: boolean,
): Promise<{ gang: GangView; podNames: string[] }> {
  const [pods, owner, events] = await Promise.all([
    api.get<{ items: Parameters<typeof podView>[0][] }>(`/api/v1/namespaces/${ns}/pods`, { labelSelector: `${LABEL.gang}=${name}` }),
    api.find<{ status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } }>(controller.path(ns, name)),
    api.get<{ items: { involvedObject: { name: string }; reason: string; message: string; type: string }[] }>(`/api/v1/namespaces/${ns}/events`, {
      fieldSelector: 'type=Warning',
    }),
  ]);
  const views = pods.items.map((p) => podView(p, LABEL.nodeRank));
  const nodes: GangView['nodes'] = {};
  for (const node of new Set(views.map((v) => v.nodeName).filter((n): n is string => !!n))) {
    const n = await api.find<{ status?: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${node}`);
    nodes[node] = n ? { ready: n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' } : undefined;
  }
  const mine = new Set([name, ...views.map((v) => v.name)]);
  return {
    gang: {
      expected,
      pods: views,
      nodes,
      conditions: owner?.status?.conditions ?? [],
      events: events.items.filter((e) => mine.has(e.involvedObject.name)).map((e) => ({ object: e.involvedObject.name, reason: e.reason, message: e.message })),
      // Our own stop deletes the controller first: that is not a deletion from outside.
      gone: owner === undefined && !stopping,
    },
    podNames: views.filter((v) => v.phase !== 'Pending' || v.terminated).map((v) => v.name),
  };
}

/** Every rank's log, streamed from the API into the attempt log (masked) and the watcher. */
class LogStreams {
  private readonly open = new Map<string, Promise<void>>();
  private readonly windows = new Map<string, { push(line: string): void; lines(): string[] }>();
  private readonly abort = new AbortController();
  constructor(
    private readonly api: KubeApi,
    private readonly ns: string,
    private readonly o: KubernetesGangOptions,
  ) {}

  follow(pods: string[]): void {
    for (const pod of pods) {
      if (this.open.has(pod)) continue;
      const window = this.o.rankWindow?.();
      if (window) this.windows.set(pod, window);
      const done = this.api
        .stream(
          `/api/v1/namespaces/${this.ns}/pods/${pod}/log`,
          { container: 'ascend', follow: true },
          (raw) => {
            const line = this.o.mask(raw);
            fs.appendFileSync(this.o.logFile, `${line}\n`);
            window?.push(line);
            this.o.onLine(line);
          },
          this.abort.signal,
        )
        .catch((e: Error) => fs.appendFileSync(this.o.logFile, `# kubernetes: log of pod ${pod}: ${e.message}\n`));
      this.open.set(pod, done);
    }
  }

  /** One rank's lines as its window kept them. */
  linesOf(pod: string): string[] | undefined {
    return this.windows.get(pod)?.lines();
  }

  /** Waits for the streams to reach the ranks' last lines, at most `ms`. */
  async close(ms: number): Promise<void> {
    const timer = setTimeout(() => this.abort.abort(), ms);
    await Promise.all(this.open.values());
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
