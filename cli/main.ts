/**
 * The `linkflow` command. Exit codes: 0 success, 1 the pipeline or a command failed,
 * 2 the spec (or the command line) is invalid. `diagnose`: 0 a failure was classified, 1 the log
 * shows no failure, 2 bad input.
 */
import { Command, CommanderError } from 'commander';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { absolutizePaths, importScript } from '../import/import-script.ts';
import { parseModelLinkScript } from '../import/shell-script.ts';
import { loadConfig } from '../temporal.config.ts';
import { formatProblems } from '../spec/spec.ts';
import { presetNames, getPreset } from '../frameworks/modellink/presets.ts';
import { adviseSaveInterval, observationsOf } from '../plan/advise.ts';
import { loadSpecFile } from '../client/spec-file.ts';
import { connectClient, ServerUnreachableError } from '../client/connect.ts';
import { snapshot, startPipeline } from '../client/pipeline.ts';
import { jsonSummary, summaryText } from './progress.ts';
import { renderPlan } from './render.ts';
import { validateKubernetes } from './validate-kubernetes.ts';
import { watchPipeline } from './watch.ts';
import { runDev, runDemo, runWorker } from './dev.ts';
import { defaultNodeAddress } from '../node/identity.ts';
import { parseBindAddress } from '../worker/metrics-server.ts';
import { ExitError } from '../errors.ts';
import { checkpointAndStopSignal, setSaveIntervalSignal } from '../contracts/workflows.ts';
import { registerBenchCommands } from './bench.ts';
import { diagnoseCommand } from './diagnose.ts';
import { registerNodesCommand } from './nodes.ts';
import { listPipelines, listQuery, ListFilterError } from '../client/list.ts';
import { webUiUrl, workflowUiLink } from '../client/ui-link.ts';
import { listTable } from './list.ts';
import { logsCommand } from './logs.ts';

function planOrExit(file: string, workspace?: string) {
  const result = loadSpecFile(file, { workspace });
  if (!result.ok) {
    throw new ExitError(
      `${file}: invalid pipeline spec (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}):\n${formatProblems(result.problems)}`,
      2,
    );
  }
  for (const w of result.warnings) console.error(`warning: ${w.path}: ${w.message}`);
  return result;
}

/** --metrics, else LINKFLOW_METRICS; a bad address is reported (exit 2) before anything starts. */
function metricsBindOf(option: string | undefined): string | undefined {
  const bind = option ?? (process.env.LINKFLOW_METRICS || undefined);
  if (bind) {
    try {
      parseBindAddress(bind);
    } catch (e) {
      throw new ExitError((e as Error).message, 2);
    }
  }
  return bind;
}

const program = new Command('linkflow').description('ModelLink training pipelines as durable Temporal workflows').showHelpAfterError().exitOverride();

program
  .command('validate <spec>')
  .description(
    'check a pipeline spec without running anything (Kubernetes stages: their gangs by server-side dry run, or offline against the schemas linkflow carries)',
  )
  .action(async (file: string) => {
    const { plan } = planOrExit(file);
    const gangs = await validateKubernetes(plan);
    console.log(
      `${file}: valid; pipeline ${plan.name}, ${plan.stages.length} stages: ${plan.stages.map((s) => `${s.name} (${s.kind})`).join(', ')}${gangs ? `\n${gangs}` : ''}`,
    );
  });

program
  .command('render <spec>')
  .description('print the exact command of each stage (nothing runs)')
  .option('--sh', 'print each stage as a shell line with safe quoting')
  .option('--json', 'print the plan as JSON')
  .action((file: string, opts: { sh?: boolean; json?: boolean }) => {
    const { plan } = planOrExit(file);
    console.log(opts.json ? JSON.stringify(plan, null, 2) : renderPlan(plan, opts.sh ? 'sh' : 'argv'));
  });

program
  .command('run <spec>')
  .description('start a pipeline; prints its workflow id')
  .option('--wait', 'show live progress until the pipeline ends, then a summary')
  .option('--json', 'wait, then print one JSON object { workflowId, status, stages }')
  .option('--workspace <dir>', "override the spec's workspace directory")
  .action(async (file: string, opts: { wait?: boolean; json?: boolean; workspace?: string }) => {
    const { plan } = planOrExit(file, opts.workspace);
    const config = loadConfig();
    const client = await connectClient(config);
    const handle = await startPipeline(client, config, plan);
    const ui = await webUiUrl(config);
    const link = ui ? `Web UI: ${workflowUiLink(ui, config.namespace, handle.workflowId)}` : undefined;
    if (!opts.wait && !opts.json) {
      console.log(handle.workflowId);
      if (link) console.error(link);
      return;
    }
    if (!opts.json) console.log(`started ${handle.workflowId}${link ? `\n${link}` : ''}`);
    else if (link) console.error(link);
    const final = await watchPipeline(handle, { quiet: !!opts.json });
    if (opts.json) console.log(JSON.stringify(jsonSummary(handle.workflowId, final.state, final.workflowStatus)));
    else console.log(summaryText(handle.workflowId, final.state, final.failure));
    if (final.workflowStatus !== 'COMPLETED') process.exitCode = 1;
  });

program
  .command('status <workflowId>')
  .description('show the progress of a pipeline')
  .option('--json', 'print one JSON object')
  .action(async (id: string, opts: { json?: boolean }) => {
    const client = await connectClient(loadConfig());
    const snap = await snapshot(client.workflow.getHandle(id));
    if (opts.json) console.log(JSON.stringify({ ...jsonSummary(id, snap.state, snap.workflowStatus), live: snap.live }));
    else console.log(summaryText(id, snap.state, snap.failure) + (snap.live ? `\n  live: ${JSON.stringify(snap.live)}` : ''));
  });

program
  .command('list')
  .description("list pipelines through Temporal's visibility (newest first)")
  .option('--status <status>', 'running, succeeded, failed, cancelled or stopped')
  .option('--model <preset>', 'the model preset')
  .option('--since <when>', 'started within a duration ("12h", "7d") or since a date ("2026-11-30")')
  .option('--json', 'print a JSON array')
  .action(async (opts: { status?: string; model?: string; since?: string; json?: boolean }) => {
    let query: string;
    try {
      query = listQuery(opts);
    } catch (e) {
      if (e instanceof ListFilterError) throw new ExitError(e.message, 2);
      throw e;
    }
    const rows = await listPipelines(await connectClient(loadConfig()), query);
    console.log(opts.json ? JSON.stringify(rows) : listTable(rows));
  });

program
  .command('logs <workflowId>')
  .description("print a stage's attempt log, wherever it lives (a node's local disk: through that node's worker)")
  .option('--stage <name>', 'the stage (default: the running one, else the last that ran)')
  .option('--attempt <n>', 'the attempt (default: the latest)')
  .option('-f, --follow', 'follow the running attempt, and the next attempts of the stage, until the stage ends')
  .option('--via-node', "read through the node's worker even when the file is visible here")
  .action(async (id: string, opts: { stage?: string; attempt?: string; follow?: boolean; viaNode?: boolean }) => {
    await logsCommand(id, opts);
  });

program
  .command('cancel <workflowId>')
  .description('cancel a pipeline: the running stage is stopped and its process group killed')
  .action(async (id: string) => {
    const client = await connectClient(loadConfig());
    await client.workflow.getHandle(id).cancel();
    console.log(`cancellation requested for ${id}`);
  });

program
  .command('stop <workflowId>')
  .description(
    'checkpoint now and stop: the running training attempt saves (--exit-signal-handler, on unless exitSignalHandler: false) and the pipeline ends as stopped; run it again to resume',
  )
  .action(async (id: string) => {
    const client = await connectClient(loadConfig());
    await client.workflow.getHandle(id).signal(checkpointAndStopSignal);
    console.log(`asked ${id} to checkpoint and stop`);
  });

program
  .command('save-interval <workflowId> <iterations>')
  .description('set the save interval of training attempts, from the next attempt on')
  .action(async (id: string, iterations: string) => {
    const n = Number(iterations);
    if (!Number.isInteger(n) || n <= 0) throw new ExitError(`save interval: expected a positive integer, got ${iterations}`, 2);
    const client = await connectClient(loadConfig());
    await client.workflow.getHandle(id).signal(setSaveIntervalSignal, n);
    console.log(`${id}: training attempts from the next one on save every ${n} iterations`);
  });

program
  .command('advise <workflowId>')
  .description("recommend a save interval from a pipeline's attempt log (Young/Daly)")
  .option('--json', 'print JSON')
  .action(async (id: string, opts: { json?: boolean }) => {
    const client = await connectClient(loadConfig());
    const snap = await snapshot(client.workflow.getHandle(id));
    const advice = (snap.state?.stages ?? [])
      .filter((s) => s.kind === 'pretrain' || s.kind === 'finetune')
      .map((s) => {
        const observed = observationsOf(s);
        return { stage: s.name, observed, advice: observed ? adviseSaveInterval(observed) : undefined };
      });
    if (opts.json) {
      console.log(JSON.stringify({ workflowId: id, stages: advice }));
      return;
    }
    const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    for (const a of advice) {
      if (!a.observed || !a.advice) {
        console.log(`${a.stage}: no failures (or no saves) observed yet; nothing to advise`);
        continue;
      }
      const o = a.observed;
      console.log(
        `${a.stage}: ${o.failures} failure(s) in ${sec(o.runMs)} (MTBF ${sec(a.advice.mtbfMs)}); a save takes ${sec(o.saveMs)}, recovery ${sec(o.recoveryMs)}, an iteration ${o.iterationMs.toFixed(0)} ms`,
      );
      console.log(
        `  save every ${a.advice.recommendedIterations} iterations (Daly ${sec(a.advice.dalyMs)}, Young ${sec(a.advice.youngMs)}) instead of ${o.saveInterval}: expected time lost ${(a.advice.wasteRecommended * 100).toFixed(1)} % instead of ${(a.advice.wasteNow * 100).toFixed(1)} %`,
      );
      console.log(`  apply it: linkflow save-interval ${id} ${a.advice.recommendedIterations}   (or saveInterval in the spec)`);
    }
  });

program
  .command('diagnose <log>')
  .description(
    'classify a log file (a manual run that failed, an attempt log) as linkflow classifies an attempt; exit 0 a failure was classified, 1 no failure in the log, 2 bad input',
  )
  .option('--json', 'print one JSON object { file, lines, failed, exitStatus, class, retryable, budget, reason, line, excerpt }')
  .option('--exit-code <n>', "the process's exit status, when known (otherwise read from the log)")
  .action(async (file: string, opts: { json?: boolean; exitCode?: string }) => {
    process.exitCode = await diagnoseCommand(file, opts);
  });

program
  .command('presets')
  .description('list the model presets')
  .option('--json', 'print JSON')
  .action((opts: { json?: boolean }) => {
    const presets = presetNames().map((n) => getPreset(n)!);
    if (opts.json) console.log(JSON.stringify(presets, null, 2));
    const width = Math.max(...presets.map((p) => p.name.length));
    if (!opts.json)
      for (const p of presets)
        console.log(
          `${p.name.padEnd(width)} ${p.description} (${p.impls.join(', ')}; reference ${p.reference.nodes}x${p.reference.devicesPerNode} TP${p.reference.tp} PP${p.reference.pp}${p.reference.tokensPerSecondPerDevice ? `, ${p.reference.tokensPerSecondPerDevice} tokens/s/device` : ''})`,
        );
  });

program
  .command('import <script>')
  .description('read a ModelLink example-style shell script into a pipeline spec (printed as YAML)')
  .option('--preset <id>', "the model preset (default: the one with the script's architecture)")
  .option('--name <name>', 'pipeline and stage name (default: from the file name)')
  .option('--root <dir>', 'the ModelLink checkout the script runs in; its relative paths are relative to it', '.')
  .option('-o, --output <file>', 'write the spec to a new file instead of standard output')
  .action((file: string, opts: { preset?: string; name?: string; root: string; output?: string }) => {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new ExitError(`cannot read ${file}: ${(e as Error).message}`, 2);
    }
    const name =
      opts.name ??
      path
        .basename(file)
        .replace(/\.sh$/, '')
        .replace(/[^A-Za-z0-9_.-]+/g, '-')
        .replace(/^[^A-Za-z0-9]+/, '') ??
      'imported';
    let result;
    try {
      result = importScript(parseModelLinkScript(text), { name, root: opts.root, preset: opts.preset, scriptPath: file });
    } catch (e) {
      throw new ExitError(`${file}: ${(e as Error).message}`, 2);
    }
    const spec = absolutizePaths(result.spec, opts.root);
    const header = [
      `# Imported by linkflow from ${file}: a ${result.kind} stage of preset ${result.preset}.`,
      `# ${result.overrides === 0 ? 'Every flag is expressed by typed options.' : `${result.overrides} flag(s) not covered by typed options are kept verbatim under args.`}`,
      ...result.notes.map((n) => `# note: ${n}`),
      '# Fill in the ${...} placeholders, set workspace, then: linkflow render <this file> --sh',
    ].join('\n');
    const yaml = `${header}\n${YAML.stringify(spec)}`;
    if (!opts.output) {
      process.stdout.write(yaml);
      return;
    }
    if (fs.existsSync(opts.output)) throw new ExitError(`${opts.output} already exists; linkflow does not overwrite it (choose another --output)`, 1);
    fs.writeFileSync(opts.output, yaml);
    console.error(`wrote ${opts.output}`);
  });

program
  .command('dev')
  .description('run the embedded Temporal dev server (state kept under .linkflow/), its Web UI and a local worker; Ctrl-C stops all')
  .option('--metrics <host:port>', "serve the worker's Prometheus metrics there (as `linkflow worker --metrics`; default: LINKFLOW_METRICS)")
  .action(async (opts: { metrics?: string }) => runDev(loadConfig(), metricsBindOf(opts.metrics)));

program
  .command('worker')
  .description("run a worker on this node: it joins the pool's allocator, which places attempts on it")
  .option('--queue <taskQueue>', 'task queue of the pool to poll (default: the configured one)')
  .option('--node <name>', "this node's name in the pool (default: the host name); its own queue is where attempts are placed")
  .option(
    '--address <host>',
    'where the other nodes reach this one (rank 0 becomes the master address; default: LINKFLOW_NODE_ADDRESS or the first non-loopback IPv4)',
  )
  .option('--metrics <host:port>', "serve Prometheus metrics (linkflow's and the Temporal SDK's) at http://HOST:PORT/metrics (default: LINKFLOW_METRICS)")
  .action(async (opts: { queue?: string; node?: string; address?: string; metrics?: string }) => {
    const node = { node: opts.node ?? os.hostname(), address: opts.address ?? process.env.LINKFLOW_NODE_ADDRESS ?? defaultNodeAddress() };
    await runWorker(loadConfig(), opts.queue, node, metricsBindOf(opts.metrics));
  });

program
  .command('demo')
  .description('run the demo pipeline on the emulator, with a crash injected in pretraining, and show the resume')
  .option('--kubernetes <image>', 'run every stage as pods of this image on the cluster of KUBECONFIG (README, Running on Kubernetes)')
  .option('--namespace <name>', 'with --kubernetes: the namespace (default: default)')
  .action(async (opts: { kubernetes?: string; namespace?: string }) => {
    process.exitCode = await runDemo(loadConfig(), opts.kubernetes ? { image: opts.kubernetes, namespace: opts.namespace } : undefined);
  });

registerBenchCommands(program);
registerNodesCommand(program);

program
  .command('bootstrap')
  .description('find or install the Temporal CLI (dev server)')
  .action(async () => {
    const { findTemporalCli } = await import('../devserver/temporal-cli.ts');
    const cli = await findTemporalCli({ install: true });
    if (!cli)
      throw new ExitError(
        'no Temporal CLI could be found or installed; the dev server will be downloaded by @temporalio/testing where the internet is reachable',
        1,
      );
    console.log(`temporal ${cli.version} at ${cli.path} (${cli.source})`);
  });

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (e instanceof ExitError) {
      console.error(e.message);
      process.exitCode = e.code;
      return;
    }
    if (e instanceof ServerUnreachableError) {
      console.error(e.message);
      process.exitCode = 1;
      return;
    }
    console.error(`linkflow: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
