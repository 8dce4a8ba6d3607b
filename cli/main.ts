/**
 * The `linkflow` command. Exit codes: 0 success, 1 the pipeline or a command failed,
 * 2 the spec (or the command line) is invalid. `diagnose`: 0 a failure was classified, 1 the log
 * shows no failure, 2 bad input.
 *
 * Only commander and the error type load with this file: every command imports what it needs when it
 * runs (the Temporal client alone takes most of a second to load, the worker more), so `--help` and
 * `validate` answer at once (perf/cli-start.ts).
 */
import { Command, CommanderError } from 'commander';
import { ExitError } from '../errors.ts';
import { registerBenchCommands } from './bench.ts';
import { registerNodesCommand } from './nodes.ts';

async function planOrExit(file: string, workspace?: string) {
  const { loadSpecFile } = await import('../client/spec-file.ts');
  const { formatProblems } = await import('../spec/spec.ts');
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
async function metricsBindOf(option: string | undefined): Promise<string | undefined> {
  const bind = option ?? (process.env.LINKFLOW_METRICS || undefined);
  if (bind) {
    const { parseBindAddress } = await import('../worker/metrics-server.ts');
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
    'check a pipeline spec without running anything; --on-node also checks paths, setup script and free devices on that node; Kubernetes stages: their gangs by server-side dry run, or offline against the schemas linkflow carries',
  )
  .option('--on-node <name>', "run the node checks through that node's worker (its node queue)")
  .option('--workspace <dir>', "override the spec's workspace directory")
  .action(async (file: string, opts: { onNode?: string; workspace?: string }) => {
    const { validateCommand } = await import('./validate.ts');
    await validateCommand(file, opts);
  });

program
  .command('render <spec>')
  .description('print the exact command of each stage (nothing runs)')
  .option('--sh', 'print each stage as a shell line with safe quoting')
  .option('--json', 'print the plan as JSON')
  .action(async (file: string, opts: { sh?: boolean; json?: boolean }) => {
    const { plan } = await planOrExit(file);
    const { renderPlan } = await import('./render.ts');
    console.log(opts.json ? JSON.stringify(plan, null, 2) : renderPlan(plan, opts.sh ? 'sh' : 'argv'));
  });

program
  .command('run <spec>')
  .description('start a pipeline; prints its workflow id')
  .option('--wait', 'show live progress until the pipeline ends, then a summary (Ctrl-C detaches; the pipeline keeps running)')
  .option('--json', 'wait, then print one JSON object { workflowId, status, stages }')
  .option('--workspace <dir>', "override the spec's workspace directory")
  .action(async (file: string, opts: { wait?: boolean; json?: boolean; workspace?: string }) => {
    const { runCommand } = await import('./pipeline-commands.ts');
    await runCommand(file, opts);
  });

program
  .command('watch <workflowId>')
  .description('show the live progress of a running pipeline until it ends, then a summary (Ctrl-C detaches)')
  .action(async (id: string) => {
    const { watchCommand } = await import('./pipeline-commands.ts');
    await watchCommand(id);
  });

program
  .command('status <workflowId>')
  .description('show the progress of a pipeline')
  .option('--json', 'print one JSON object')
  .action(async (id: string, opts: { json?: boolean }) => {
    const { statusCommand } = await import('./pipeline-commands.ts');
    await statusCommand(id, opts);
  });

program
  .command('list')
  .description("list pipelines and benchmark cases through Temporal's visibility (newest first)")
  .option('--status <status>', 'running, succeeded, failed, cancelled or stopped')
  .option('--model <preset>', 'the model preset')
  .option('--since <when>', 'started within a duration ("12h", "7d") or since a date ("2026-11-30")')
  .option('--json', 'print a JSON array')
  .action(async (opts: { status?: string; model?: string; since?: string; json?: boolean }) => {
    const { listCommand } = await import('./list.ts');
    await listCommand(opts);
  });

program
  .command('logs <workflowId>')
  .description("print a stage's attempt log, wherever it lives (a node's local disk: through that node's worker)")
  .option('--stage <name>', 'the stage (default: the running one, else the last that ran)')
  .option('--attempt <n>', 'the attempt (default: the latest)')
  .option('-f, --follow', 'follow the running attempt, and the next attempts of the stage, until the stage ends')
  .option('--via-node', "read through the node's worker even when the file is visible here")
  .action(async (id: string, opts: { stage?: string; attempt?: string; follow?: boolean; viaNode?: boolean }) => {
    const { logsCommand } = await import('./logs.ts');
    await logsCommand(id, opts);
  });

program
  .command('cancel <workflowId>')
  .description('cancel a pipeline: the running stage is stopped and its process group killed')
  .action(async (id: string) => {
    const { cancelCommand } = await import('./pipeline-commands.ts');
    await cancelCommand(id);
  });

program
  .command('stop <workflowId>')
  .description(
    'checkpoint now and stop: the running training attempt saves (--exit-signal-handler, on unless exitSignalHandler: false) and the pipeline ends as stopped; run it again to resume',
  )
  .option('--now', 'a stage without the exit signal handler: stop at once (losing the iterations since its last checkpoint) instead of at its next save')
  .action(async (id: string, opts: { now?: boolean }) => {
    const { stopCommand } = await import('./pipeline-commands.ts');
    await stopCommand(id, opts);
  });

program
  .command('save-interval <workflowId> <iterations>')
  .description('set the save interval of training attempts, from the next attempt on')
  .action(async (id: string, iterations: string) => {
    const n = Number(iterations);
    if (!Number.isInteger(n) || n <= 0) throw new ExitError(`save interval: expected a positive integer, got ${iterations}`, 2);
    const { saveIntervalCommand } = await import('./pipeline-commands.ts');
    await saveIntervalCommand(id, n);
  });

program
  .command('advise <workflowId>')
  .description('recommend a save interval from the attempt log of every run of a pipeline (Young/Daly)')
  .option('--json', 'print JSON')
  .action(async (id: string, opts: { json?: boolean }) => {
    const { adviseCommand } = await import('./advise.ts');
    await adviseCommand(id, opts);
  });

program
  .command('diagnose <log>')
  .description(
    'classify a log file (a manual run that failed, an attempt log) as linkflow classifies an attempt; exit 0 a failure was classified, 1 no failure in the log, 2 bad input',
  )
  .option('--json', 'print one JSON object { file, lines, failed, exitStatus, class, retryable, budget, reason, line, excerpt }')
  .option('--exit-code <n>', "the process's exit status, when known (otherwise read from the log)")
  .action(async (file: string, opts: { json?: boolean; exitCode?: string }) => {
    const { diagnoseCommand } = await import('./diagnose.ts');
    process.exitCode = await diagnoseCommand(file, opts);
  });

program
  .command('presets')
  .description("list the model presets: ModelLink's, then each MindSpeed-LLM version's with its published throughput")
  .option('--json', 'print JSON')
  .option('--flavour <flavour>', 'only this framework: modellink or mindspeed-llm')
  .option('--version <version>', 'only this MindSpeed-LLM version (with --flavour mindspeed-llm)')
  .action(async (opts: { json?: boolean; flavour?: string; version?: string }) => {
    const { presetsCommand } = await import('./presets.ts');
    process.exitCode = presetsCommand(opts);
  });

program
  .command('import <script>')
  .description('read a ModelLink example-style shell script into a pipeline spec (printed as YAML)')
  .option('--preset <id>', "the model preset (default: the one with the script's architecture)")
  .option('--name <name>', 'pipeline and stage name (default: from the file name)')
  .option('--root <dir>', 'the ModelLink checkout the script runs in; its relative paths are relative to it', '.')
  .option('-o, --output <file>', 'write the spec to a new file instead of standard output')
  .action(async (file: string, opts: { preset?: string; name?: string; root: string; output?: string }) => {
    const { importCommand } = await import('./import.ts');
    importCommand(file, opts);
  });

program
  .command('dev')
  .description('run the embedded Temporal dev server (state kept under .linkflow/), its Web UI and a local worker; Ctrl-C stops all')
  .option('--metrics <host:port>', "serve the worker's Prometheus metrics there (as `linkflow worker --metrics`; default: LINKFLOW_METRICS)")
  .action(async (opts: { metrics?: string }) => {
    const bind = await metricsBindOf(opts.metrics);
    const [{ runDev }, { loadConfig }] = await Promise.all([import('./dev.ts'), import('../temporal.config.ts')]);
    await runDev(loadConfig(), bind);
  });

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
    const bind = await metricsBindOf(opts.metrics);
    const [{ runWorker }, { loadConfig }, { defaultNodeAddress }, os] = await Promise.all([
      import('./dev.ts'),
      import('../temporal.config.ts'),
      import('../node/identity.ts'),
      import('node:os'),
    ]);
    const node = { node: opts.node ?? os.hostname(), address: opts.address ?? process.env.LINKFLOW_NODE_ADDRESS ?? defaultNodeAddress() };
    await runWorker(loadConfig(), opts.queue, node, bind);
  });

program
  .command('demo')
  .description('run the demo pipeline on the emulator, with a crash injected in pretraining, and show the resume')
  .option('--kubernetes <image>', 'run every stage as pods of this image on the cluster of KUBECONFIG (README, Running on Kubernetes)')
  .option('--namespace <name>', 'with --kubernetes: the namespace (default: default)')
  .action(async (opts: { kubernetes?: string; namespace?: string }) => {
    const [{ runDemo }, { loadConfig }] = await Promise.all([import('./dev.ts'), import('../temporal.config.ts')]);
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
    // ServerUnreachableError (client/connect.ts) is an ExitError too: it says how to start a server.
    if (e instanceof ExitError) {
      console.error(e.message);
      process.exitCode = e.code;
      return;
    }
    console.error(`linkflow: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
