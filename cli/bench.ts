/**
 * `linkflow bench …`: the nightly benchmark as a Temporal Schedule (create or update, pause,
 * unpause, delete, list), a run now, and the report of the last run from the results database.
 */
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import type { BenchmarkOutcome, BenchmarkWorkflow } from '../contracts/workflows.ts';
import { ExitError } from '../errors.ts';

// Each command loads what it needs when it runs (the Temporal client, SQLite), so `--help` stays fast.
const suiteFile = () => import('../benchmark/suite-file.ts');
const reports = () => import('../benchmark/report.ts');
const schedules = () => import('../client/schedules.ts');
const config = async () => (await import('../temporal.config.ts')).loadConfig();

async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const { connectClient } = await import('../client/connect.ts');
  const client = await connectClient(await config());
  try {
    return await fn(client);
  } finally {
    await client.connection.close();
  }
}

/** Where `bench run --suite FILE` notes FILE, so a `bench report` without --suite reports on it. */
const LAST_SUITE = path.join('.linkflow', 'last-bench-suite');

function rememberSuite(file: string | undefined): void {
  try {
    if (file === undefined) fs.rmSync(LAST_SUITE, { force: true });
    else {
      fs.mkdirSync(path.dirname(LAST_SUITE), { recursive: true });
      fs.writeFileSync(LAST_SUITE, path.resolve(file) + '\n');
    }
  } catch {
    // Only a convenience for `bench report`.
  }
}

function rememberedSuite(): string | undefined {
  try {
    const file = fs.readFileSync(LAST_SUITE, 'utf8').trim();
    return file && fs.existsSync(file) ? file : undefined;
  } catch {
    return undefined;
  }
}

export function registerBenchCommands(program: Command): void {
  const bench = program.command('bench').description("nightly throughput benchmarks against ModelLink's published table (a Temporal Schedule)");
  const suiteOption = ['--suite <file>', 'benchmark suite file (default: every row of the performance table)'] as const;

  bench
    .command('schedule')
    .description('create or update the Schedule that runs the suite (overlap: skip)')
    .requiredOption('--cron <expr>', 'when, e.g. "0 2 * * *"')
    .option('--timezone <tz>', 'IANA time zone of the cron expression', 'UTC')
    .option(...suiteOption)
    .option('--id <scheduleId>', 'schedule id (default: linkflow-bench-<suite name>)')
    .option('--catchup-window <duration>', 'run a night missed while the server was down if it is back within this long', '6h')
    .option('--pause-on-failure', 'pause the Schedule when a run fails (not when a case fails)')
    .action(async (opts: { cron: string; timezone: string; suite?: string; id?: string; catchupWindow: string; pauseOnFailure?: boolean }) => {
      const suite = (await suiteFile()).loadSuite(opts.suite);
      const { createOrUpdateSchedule, scheduleId } = await schedules();
      const { defaultStorePath } = await import('../benchmark/store.ts');
      const taskQueue = suite.taskQueue ?? (await config()).taskQueue;
      const what = await withClient((client) =>
        createOrUpdateSchedule(client, suite, {
          id: opts.id,
          cron: opts.cron,
          timezone: opts.timezone,
          catchupWindow: opts.catchupWindow,
          pauseOnFailure: opts.pauseOnFailure ?? false,
          taskQueue,
        }),
      );
      console.log(
        `${what} schedule ${scheduleId(suite, opts.id)}: "${opts.cron}" (${opts.timezone}), suite ${suite.name}, task queue ${taskQueue}; results in ${defaultStorePath(suite.workspace)}`,
      );
    });

  bench
    .command('run')
    .description('run the suite once now, wait for it and print the report')
    .option(...suiteOption)
    .option('--no-wait', 'start it and print its workflow id')
    .action(async (opts: { suite?: string; wait: boolean }) => {
      const suite = (await suiteFile()).loadSuite(opts.suite);
      const taskQueue = suite.taskQueue ?? (await config()).taskQueue;
      const [{ benchmarkWorkflowType }, { WorkflowFailedError }, { report }] = await Promise.all([
        import('../contracts/workflows.ts'),
        import('@temporalio/client'),
        reports(),
      ]);
      rememberSuite(opts.suite);
      await withClient(async (client) => {
        const workflowId = `bench-${suite.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        const handle = await client.workflow.start<BenchmarkWorkflow>(benchmarkWorkflowType, {
          workflowId,
          taskQueue,
          args: [{ suite }],
        });
        console.error(`benchmark run ${workflowId} started (${suite.name})`);
        if (!opts.wait) {
          console.log(workflowId);
          return;
        }
        let outcome: BenchmarkOutcome;
        try {
          outcome = await handle.result();
        } catch (err) {
          if (err instanceof WorkflowFailedError) {
            // The innermost cause says what went wrong ("Activity task failed" does not).
            let cause: Error = err;
            while (cause.cause instanceof Error) cause = cause.cause;
            throw new ExitError(`benchmark run ${workflowId} failed: ${cause.message}`, 1);
          }
          throw err;
        }
        console.log(report(suite, { runId: outcome.runId }));
        if (outcome.notified) console.error(`summary sent to ${outcome.notified}`);
        if (outcome.notifyError) console.error(`warning: the webhook did not receive the summary: ${outcome.notifyError}`);
        if ((outcome.counts.regression ?? 0) > 0 || (outcome.counts.failed ?? 0) > 0) process.exitCode = 1;
      });
    });

  bench
    .command('list')
    .description('the benchmark Schedules: cron, paused or not, next and last runs')
    .action(async () => {
      const { SCHEDULE_PREFIX } = await schedules();
      await withClient(async (client) => {
        let any = false;
        for await (const s of client.schedule.list()) {
          if (!s.scheduleId.startsWith(SCHEDULE_PREFIX)) continue;
          any = true;
          const d = await client.schedule.getHandle(s.scheduleId).describe();
          const last = d.info.recentActions.at(-1);
          console.log(
            [
              s.scheduleId,
              d.state.paused ? `paused${d.state.note ? ` (${d.state.note})` : ''}` : 'active',
              `timezone ${d.spec.timezone ?? 'UTC'}`,
              `next ${d.info.nextActionTimes[0]?.toISOString() ?? '—'}`,
              `last ${last ? `${last.takenAt.toISOString()} (${last.action.workflow.workflowId})` : '—'}`,
            ].join('  '),
          );
        }
        if (!any) console.log('no benchmark schedules; create one with `linkflow bench schedule --cron "0 2 * * *"`');
      });
    });

  for (const [name, description, act] of [
    ['pause', 'pause a benchmark Schedule', (h: ReturnType<Client['schedule']['getHandle']>) => h.pause('paused with linkflow bench pause')],
    ['unpause', 'unpause a benchmark Schedule', (h: ReturnType<Client['schedule']['getHandle']>) => h.unpause('unpaused with linkflow bench unpause')],
    ['delete', 'delete a benchmark Schedule (stored results stay)', (h: ReturnType<Client['schedule']['getHandle']>) => h.delete()],
  ] as const) {
    bench
      .command(name)
      .description(description)
      .option(...suiteOption)
      .option('--id <scheduleId>', 'schedule id (default: linkflow-bench-<suite name>)')
      .action(async (opts: { suite?: string; id?: string }) => {
        const [{ scheduleId }, { suiteOnly }, { ScheduleNotFoundError }] = await Promise.all([schedules(), suiteFile(), import('@temporalio/client')]);
        const id = opts.id ?? scheduleId(suiteOnly(opts.suite));
        await withClient(async (client) => {
          try {
            await act(client.schedule.getHandle(id));
          } catch (err) {
            if (err instanceof ScheduleNotFoundError) throw new ExitError(`no schedule ${id}; \`linkflow bench list\` shows them`, 1);
            throw err;
          }
        });
        console.log(`${name === 'delete' ? 'deleted' : `${name}d`} schedule ${id}`);
      });
  }

  bench
    .command('report')
    .description('the last run: case, baseline, last, history median, change, verdict')
    .option(...suiteOption)
    .option('--db <file>', 'results database (default: <suite workspace>/.linkflow/benchmarks.sqlite)')
    .option('--run <runId>', 'a given run instead of the newest')
    .option('--html <file>', 'also write a self-contained HTML page with a chart per case')
    .option('--json', 'print the JSON summary (what the webhook receives) instead of the table')
    .action(async (opts: { suite?: string; db?: string; run?: string; html?: string; json?: boolean }) => {
      const [{ suiteOnly }, { report }] = await Promise.all([suiteFile(), reports()]);
      // Without --suite: the suite `bench run` last ran here, whose results are in its own workspace.
      const file = opts.suite ?? (opts.db ? undefined : rememberedSuite());
      if (file && !opts.suite) console.error(`suite ${file} (the last \`bench run --suite\`; --suite chooses another)`);
      const suite = suiteOnly(file);
      console.log(report(suite, { db: opts.db, runId: opts.run, html: opts.html, json: opts.json }));
    });
}
