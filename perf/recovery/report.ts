/** perf/RESULTS.md's sections, written from what perf/recovery/scenarios.ts measured, and its header: the machine, the load, the settings. */
import { gitCommit, gitTreeDirty } from '../../node/git.ts';
import { ROOT } from '../../testkit/specs.ts';
import { defined, describeMachine, fixed, mean, sec, secRange, table, type LoadSampler } from '../lib.ts';
import type { Params } from './params.ts';
import type { Ctx } from './pipeline.ts';
import { split, type Split } from './samples.ts';
import type { GoodputResult, GoodputRun, KindResult, RecomputeResult } from './scenarios.ts';

export function section1(results: KindResult[], p: Params): string {
  const rows = results.map((r) => {
    const d = r.samples.map((s) => split(s).detection);
    const srv = defined(r.samples.map((s) => split(s).server));
    const reaction = defined(r.samples.map((s) => (s.serverEndedAt !== undefined ? s.failed.endedAt! - s.serverEndedAt : undefined)));
    const sticky = r.facts.workflowTaskTimeouts ? `; ${r.facts.workflowTaskTimeouts} workflow task(s) timed out (sticky queue of the dead worker)` : '';
    const ratios = defined(r.samples.map((s) => (s.windowMs ? split(s).detection / s.windowMs : undefined)));
    return [
      r.label,
      String(r.samples.length),
      [...new Set(r.classes)].join(', ') || '–',
      secRange(d),
      ratios.length ? `${fixed(mean(ratios))}×` : '–',
      fixed(mean(d) / p.heartbeatTimeoutMs) + '×',
      secRange(srv),
      secRange(reaction),
      r.windowLabel + sticky,
    ];
  });
  return [
    '## 1. Detection latency',
    '',
    'Fault time: the mtime of the emulator\'s `.mlemu-fired-<kind>@<iteration>` marker (written just before the fault acts), or the moment the bench sent SIGKILL to the `linkflow worker` running the trainer. Detected: the failed attempt\'s `endedAt` (workflow time of the workflow task that recorded the failure; the dev server runs on this machine, so workflow time is wall time). "Temporal recorded" is the time of the ActivityTaskFailed/TimedOut event in the history, i.e. before the workflow task that reacted to it; "then the workflow reacted" is the gap between the two.',
    '',
    table(
      [
        'fault',
        'n',
        'classified as',
        'detection s mean (min–max)',
        '÷ its window',
        '÷ heartbeat timeout',
        'Temporal recorded s',
        'then the workflow reacted s',
        'window that bounds detection',
      ],
      rows,
    ),
    ...section1Notes(results, p),
  ].join('\n');
}

/** Observations that follow from this run's numbers (only stated when the numbers show them). */
function section1Notes(results: KindResult[], p: Params): string[] {
  const notes: string[] = [];
  const worker = results.find((r) => r.kind === 'worker');
  if (worker) {
    const late = worker.samples.filter((s) => s.serverEndedAt !== undefined && s.failed.endedAt! - s.serverEndedAt > 2_000);
    notes.push(
      `- Worker kill: Temporal times the attempt out one heartbeat timeout after the last heartbeat it received, and the worker sends heartbeats at most every 2 s (\`maxHeartbeatThrottleInterval\`), so "Temporal recorded" should lie between ${sec(p.heartbeatTimeoutMs - 2_000)} and ${sec(p.heartbeatTimeoutMs)} s after the kill, plus the server's timer delay.`,
    );
    if (late.length) {
      notes.push(
        `- Worker kill: in ${late.length} of ${worker.samples.length} kills the workflow reacted ${secRange(late.map((s) => s.failed.endedAt! - s.serverEndedAt!))} s after Temporal recorded the timeout, and the history shows ${worker.facts.workflowTaskTimeouts} workflow task timeout(s): the killed worker also held the pipeline's workflow in its cache, so the workflow task went to that worker's sticky queue first and reached a live worker only after the sticky schedule-to-start timeout (\`stickyQueueScheduleToStartTimeout\`, 3 s in worker/worker.ts; the SDK default of 10 s made this part 10 s in an earlier run).`,
      );
    }
  }
  return notes.length ? ['', ...notes] : [];
}

export function section2(results: KindResult[]): string {
  const rows = results.map((r) => {
    const parts = r.samples.map(split);
    const m = (f: (x: Split) => number | undefined) => sec(mean(defined(parts.map(f))));
    const waited = r.samples.filter((s) => s.nextLog?.waitedForLease).length;
    const timers = r.facts.timers.map((t) => t.firedAfterMs);
    return [
      r.label,
      String(parts.filter((x) => x.total !== undefined).length),
      m((x) => x.detection),
      `${m((x) => x.backoff)} (timer ${secRange(timers)})`,
      m((x) => x.dispatch) + (waited ? ` (lease wait in ${waited})` : ''),
      m((x) => x.launch),
      m((x) => x.load),
      m((x) => x.total),
    ];
  });
  return [
    '## 2. Recovery latency (fault → first iteration logged by the next attempt), mean seconds',
    '',
    'detection = fault → failed attempt\'s `endedAt`; backoff = `endedAt` → next attempt\'s `startedAt` (the configured backoff timer, whose TimerStarted → TimerFired time from the history is in parentheses, plus a workflow task); dispatch = the rest: the activity reaching a worker, input checks and the save-directory lease (a killed worker\'s lease must lapse: one heartbeat timeout after its last renewal), i.e. total − detection − backoff − startup; launch = `timings.startupMs − timings.loadMs` (process start, argument parsing, model build up to the first iteration); load = `timings.loadMs` (the "loading checkpoint" → "successfully loaded" lines); total = fault → the first iteration line of the next attempt, seen by the bench polling the log every 15 ms.',
    '',
    table(['fault', 'n', 'detection', 'backoff', 'dispatch', 'launch', 'load', 'total'], rows),
    ...section2Notes(results),
  ].join('\n');
}

function section2Notes(results: KindResult[]): string[] {
  const timers = results.flatMap((r) => r.facts.timers);
  const notes: string[] = [];
  const asked = mean(timers.map((t) => t.askedMs));
  const fired = mean(timers.map((t) => t.firedAfterMs));
  if (timers.length && fired - asked > 200) {
    notes.push(
      `- The backoff timers asked for ${sec(asked)} s fired after ${sec(fired)} s on average (TimerStarted → TimerFired in the history): the dev server did not honour the shorter backoff.`,
    );
  }
  const worker = results.find((r) => r.kind === 'worker');
  const waited = worker?.samples.filter((s) => s.nextLog?.waitedForLease) ?? [];
  if (worker && waited.length) {
    notes.push(
      `- After ${waited.length} of ${worker.samples.length} worker kills the next attempt waited for the dead attempt's save-directory lease to lapse (it is renewed every second and lapses one heartbeat timeout after the last renewal); that wait is in "dispatch".`,
    );
  }
  return notes.length ? ['', ...notes] : [];
}

export function section3(results: RecomputeResult[]): string {
  // The least a resume from the newest checkpoint can redo for these very faults: (f − 1) mod interval.
  const least = (r: RecomputeResult) => r.faults.slice(0, r.recomputed.length).map((f) => (f - 1) % r.interval);
  const rows = results.map((r) => [
    String(r.interval),
    String(r.recomputed.length),
    r.recomputed.join(' '),
    fixed(mean(r.recomputed), 1),
    fixed(mean(r.recomputed) / r.interval),
    fixed(mean(least(r)) / r.interval),
    fixed((r.interval - 1) / (2 * r.interval)),
  ]);
  const all = results.flatMap((r) => r.recomputed.map((x) => x / r.interval));
  const expected = results.flatMap((r) => r.recomputed.map(() => (r.interval - 1) / (2 * r.interval)));
  const leastAll = results.flatMap((r) => least(r).map((x) => x / r.interval));
  rows.push(['all', String(all.length), '', '', fixed(mean(all)), fixed(mean(leastAll)), `${fixed(mean(expected))} (→ 0.5 for long intervals)`]);
  return [
    '## 3. Iterations recomputed per fault',
    '',
    'Crash faults at iterations drawn uniformly (seeded) after the first checkpoint; `recomputed` is what each next attempt recorded (the failed attempt\'s last iteration minus the checkpoint it loaded). A fault "@f" fires before iteration f is logged, so the attempt reached f − 1 and recomputes (f − 1) mod interval: for uniform faults the expectation is (interval − 1) / (2 · interval), → 0.5 for long intervals. "(f − 1) mod interval" is that least possible recomputation for the faults actually drawn, so the two columns before it agree when every resume loads the newest checkpoint, and differ from the uniform expectation only by the sampling of fault positions.',
    '',
    table(['save interval', 'faults', 'recomputed per fault', 'mean', 'mean ÷ interval', '(f − 1) mod interval ÷ interval', 'uniform expectation'], rows),
  ].join('\n');
}

export function section4(g: GoodputResult, p: Params): string {
  const ideal = 1000 / g.iterMs;
  const rows = g.runs.map((r) => [
    r.label,
    String(r.interval),
    String(r.faults),
    String(r.saves),
    sec(r.wallMs),
    fixed(r.goodput, 1),
    fixed(r.goodput / ideal),
    fixed(r.modelGoodput, 1),
  ]);
  const [a, b, c] = g.runs;
  const ratio = (x: GoodputRun, y: GoodputRun) => [fixed(x.goodput / y.goodput, 3), fixed(x.modelGoodput / y.modelGoodput, 3)];
  return [
    '## 4. Goodput with crash faults',
    '',
    `${p.goodputIters} iterations of ${p.goodputIterMs} ms (measured ${fixed(g.iterMs, 1)} ms), checkpoint save cost ${p.saveMs} ms (measured ${fixed(g.saveMs, 0)} ms per save). Crashes: exponential inter-arrival times with mean ${sec(g.mtbfMs)} s (seed ${p.seed}), converted to iterations with the measured iteration time: ${g.schedule.map((f) => `@${f}`).join(' ') || 'none'} — the same iterations in (b) and (c). Each fault fires once, when training first reaches its iteration, so faults arrive per unit of new progress (a paired comparison of (b) and (c)), not per unit of wall time.`,
    '',
    `Young: √(2·C·M) = ${sec(g.youngMs)} s; Daly with the recovery time R = ${sec(g.recoveryMs)} s measured in (b) (fault → first iteration of the next attempt): ${sec(g.dalyMs)} s = ${c.interval} iterations (plan/advise.ts).`,
    '',
    'Goodput = useful iterations ÷ wall time of the training stage (first attempt scheduled → last attempt ended). "÷ ideal" divides by 1 / measured iteration time. The model column is the first-order prediction 1 / (iteration time · (1 + waste)), waste = C/τ + (τ/2 + R)/M (`wasteFraction`; C/τ alone without faults).',
    '',
    table(['run', 'save interval', 'faults', 'saves', 'wall s', 'goodput it/s', '÷ ideal', 'model it/s'], rows),
    '',
    table(
      ['goodput ratio', 'measured', 'model'],
      [
        ['b / a (cost of the faults at the fixed interval)', ...ratio(b, a)],
        ['c / a', ...ratio(c, a)],
        ['c / b (Young/Daly over the fixed interval)', ...ratio(c, b)],
      ],
    ),
  ].join('\n');
}

/** The commit the run measured, and whether the working tree (other engineers' work in progress) differed from it. */
function measuredCommit(): string {
  const head = gitCommit(ROOT, { short: true });
  const dirty = gitTreeDirty(ROOT);
  if (head === undefined || dirty === undefined) return 'unknown';
  return dirty ? `${head} (with uncommitted changes in the working tree)` : head;
}

export function header(ctx: Ctx, load: LoadSampler, elapsedMs: number): string {
  const m = describeMachine(ctx.server.cliPath);
  const p = ctx.params;
  const l = (xs?: number[]) => (xs ? xs.map((x) => x.toFixed(2)).join(' ') : '–');
  const shared = load.before[0] > 0.5 || load.samplesWithOtherTests > 0;
  return [
    '# Recovery benchmarks (issue 4)',
    '',
    `Produced by \`node --import tsx perf/recovery.ts ${p.argv}\` on ${new Date().toISOString()} at commit ${measuredCommit()}, in ${(elapsedMs / 60_000).toFixed(1)} min. Real Temporal dev server (${m.temporal}), ${ctx.workers.length} \`linkflow worker\` processes started over the run, ModelLink emulator; every number below comes from this one run.`,
    '',
    table(
      ['machine', ''],
      [
        ['cores', String(m.cores)],
        ['CPU', m.cpu],
        ['RAM', `${m.ramGiB} GiB`],
        ['OS', m.os],
        ['Node', m.node],
        ['Python', m.python],
        ['load average before (1, 5, 15 min)', l(load.before)],
        ['load average after', l(load.after)],
        ['highest 1-min load during the run', load.maxLoad1.toFixed(2)],
        ['samples (every 5 s) with other test runs (vitest) present', `${load.samplesWithOtherTests} of ${load.samples}`],
      ],
    ),
    '',
    shared
      ? "**Shared machine:** other work was running (load before the start and/or other agents' vitest processes during the run), so absolute latencies include CPU contention; the bench itself keeps about one core busy. Ratios are less affected than seconds."
      : 'The machine was otherwise idle before the run and no other test run was seen during it.',
    '',
    table(
      ['setting', 'value'],
      [
        ['heartbeat timeout', p.heartbeatTimeout],
        ['backoff (both budgets, coefficient 1)', p.backoff],
        ['iteration time, sections 1–3', `${p.iterMs} ms`],
        ['training iterations / save interval, sections 1–2', `${p.trainIters} / ${p.saveInterval}`],
        ['faults per kind', String(p.samples)],
        ['hang: noProgressTimeout', p.hangWindow],
        ['HCCL error delay (MLEMU_HCCL_DELAY_MS)', `${p.hcclDelayMs} ms`],
      ],
    ),
  ].join('\n');
}
