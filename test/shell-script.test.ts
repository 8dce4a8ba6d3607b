/**
 * The ModelLink shell-script parser (first half of `linkflow import`).
 *
 * The reference is reference/modellink/examples.json: ModelLink's 423 example scripts, each parsed.
 * The original .sh files are not in this repo, so a script is reconstructed from every entry, in the shape of
 * ModelLink's examples (exports, `source`, placeholder and value variables, DISTRIBUTED_ARGS and GPT_ARGS-style
 * multi-line blocks with continuations, the launch line with `| tee`), then parsed and compared with the entry.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { groupArgs, looksLikePlaceholder, parseModelLinkScript, type ParsedScript } from '../import/shell-script.ts';
import type { Arg } from '../frameworks/modellink/args.ts';
import { ROOT } from '../testkit/specs.ts';

interface Example {
  script: string;
  env: Record<string, string>;
  sources: string[];
  launcher: string;
  distributed: Record<string, number | string | null>;
  entrypoint: string;
  args: Arg[];
  argv: string[];
  placeholders: Record<string, { kind: string; script_value: string }>;
  log_file: string | null;
  other_commands?: string[];
  commented_out_flags?: string[];
  orphaned_args_not_passed?: Arg[];
  warnings?: string[];
}

const examples = JSON.parse(fs.readFileSync(path.join(ROOT, 'reference', 'modellink', 'examples.json'), 'utf8')) as {
  scripts: Example[];
};

// ---------------------------------------------------------------------------------------------
// Reconstruction of a script from an examples.json entry

/** Variables ModelLink's scripts use for literal values, by flag. */
const VALUE_VARS: Record<string, string> = {
  '--tensor-model-parallel-size': 'TP',
  '--pipeline-model-parallel-size': 'PP',
  '--micro-batch-size': 'MBS',
  '--global-batch-size': 'GBS',
  '--seq-length': 'SEQ_LEN',
  '--max-position-embeddings': 'SEQ_LEN',
  '--load-dir': 'LOAD_DIR',
  '--save-dir': 'SAVE_DIR',
  '--tokenizer-model': 'TOKENIZER_MODEL',
  '--tokenizer-name-or-path': 'TOKENIZER_PATH',
  '--input': 'INPUT',
  '--output-prefix': 'OUTPUT_PREFIX',
  '--save': 'CKPT_SAVE_DIR',
  '--load': 'CKPT_LOAD_DIR',
  '--data-path': 'DATA_PATH',
  '--task-data-path': 'DATA_PATH',
  '--task': 'TASK',
};
const DIST_VARS: Record<string, string> = {
  '--nnodes': 'NNODES',
  '--node_rank': 'NODE_RANK',
  '--master_addr': 'MASTER_ADDR',
  '--master_port': 'MASTER_PORT',
};

const BARE = /^[A-Za-z0-9_./:,+=@%-]+$/;
const singleQuote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;

interface Reconstructed {
  text: string;
  /** warnings the parse must give (text after any "line N: " prefix) */
  expectWarnings: string[];
}

function reconstruct(e: Example, n: number): Reconstructed {
  const out: string[] = ['#!/bin/bash', `# ${e.script} (reconstructed from examples.json)`];
  const expectWarnings: string[] = [];
  const placeholderNames = new Set(Object.keys(e.placeholders));
  const assigned = new Map<string, string>(); // value variables: name -> value
  if (n % 3 === 0) out.push('set -e');
  if (n % 4 === 1) out.push('basepath=$(cd `dirname $0`; pwd)');

  // environment: exports, or a VAR=value prefix on the launch line
  const launchPrefix: string[] = [];
  for (const [k, v] of Object.entries(e.env)) {
    let value = v.replace(/\$\{([A-Za-z_]\w*)\}/g, (_m, name: string) => (n % 2 ? `\${${name}}` : `$${name}`));
    if (n % 5 === 0 || !BARE.test(value.replace(/\$\{?\w+\}?/g, ''))) value = `"${value}"`;
    if (k === 'ASCEND_RT_VISIBLE_DEVICES' && n % 2 === 0) launchPrefix.push(`${k}=${value}`);
    else out.push(`export ${k}=${value}`);
  }
  if (e.sources.length) out.push('', '# set the path of set_env.sh for your environment');
  for (const s of e.sources) out.push(`${n % 2 ? 'source' : '.'} ${s}`);
  for (const c of e.other_commands ?? []) {
    if (/^mkdir\b/.test(c)) out.push(c);
    else if (!/^tee\b/.test(c)) out.push(`# ${c}`);
  }

  // placeholders, as the script wrote them
  out.push('', '# please fill these path configurations');
  const dynamic: string[] = [];
  for (const [name, p] of Object.entries(e.placeholders)) {
    if (p.kind === 'dynamic') dynamic.push(name);
    out.push(`${name}=${p.script_value}${n % 3 === 1 ? '  # fill in' : ''}`);
    if (p.script_value.startsWith('<')) expectWarnings.push(`value ${p.script_value} is not valid bash`);
  }

  // launcher options from argv, with variables as the examples use them
  const launcherWords = e.launcher.split(' ').length;
  const entryIndex = e.argv.findIndex((a, i) => i >= launcherWords && a.replace(/^\.\//, '') === e.entrypoint);
  const entryAsWritten = e.argv[entryIndex];
  const launcherOpts = e.argv.slice(launcherWords, entryIndex);
  const distArgs: string[] = [];
  if (e.launcher !== 'python') {
    const npus = n % 2 ? 'NPUS_PER_NODE' : 'GPUS_PER_NODE';
    const d = e.distributed;
    const nodes: string[] = [];
    for (let i = 0; i < launcherOpts.length; i++) {
      const opt = launcherOpts[i];
      const valueGiven = i + 1 < launcherOpts.length && !launcherOpts[i + 1].startsWith('-');
      const value = valueGiven ? launcherOpts[++i] : null;
      if (opt === '--nproc_per_node') {
        // a value that is missing in argv comes from a variable the script never sets
        distArgs.push(`${opt} $${value === null ? 'NPUS_PER_NODE' : npus}`);
        if (value === null) {
          out.push('NPU_PER_NODE=8');
          expectWarnings.push('launcher option --nproc_per_node has no value', 'variable $NPUS_PER_NODE is used but never set');
        } else nodes.push(`${npus}=${value}`);
        continue;
      }
      const v = DIST_VARS[opt];
      distArgs.push(`${opt} ${n % 3 === 2 ? `\${${v}}` : `$${v}`}`);
      const placeholder = /^\$\{(\w+)\}$/.exec(value ?? '');
      if (placeholder) continue; // assigned above as a placeholder
      if (opt === '--master_addr' && typeof d.nnodes === 'number' && d.nnodes > 1 && n % 2 === 0) {
        const ips = [value, ...Array.from({ length: d.nnodes - 1 }, (_, k) => `IP${k + 2}`)].map((ip) => singleQuote(ip!));
        nodes.push(`IPs=(${ips.join(' ')})`, 'MASTER_ADDR=${IPs[0]}');
        assigned.set('IPS', '');
      } else if (opt === '--nnodes' && assigned.has('IPS')) {
        nodes.push('NNODES=${#IPs[@]}');
      } else nodes.push(`${v}=${value}${opt === '--master_addr' && n % 4 === 0 ? ' # master node IP' : ''}`);
    }
    // NNODES after IPs, so ${#IPs[@]} is known
    out.push('', '# change for multinode config', ...nodes.sort((a, b) => Number(a.startsWith('NNODES=${#')) - Number(b.startsWith('NNODES=${#'))));
    if (nodes.some((l) => l.startsWith(`${npus}=`))) out.push(n % 2 ? `WORLD_SIZE=$(($${npus}*$NNODES))` : `WORLD_SIZE=$((${npus} * NNODES))`);
    for (const name of dynamic) {
      out.push(`for i in 0 1; do`, `    if [ "$(hostname)" == "node$i" ]; then`, `        ${name}=$i`, `    fi`, `done`);
      expectWarnings.push(`'for' loop is not interpreted`);
    }
  }

  // arguments: each value rendered as a script writes it
  const render = (flag: string, v: string, inBlock: boolean): string | null => {
    const ph = /^\$\{(\w+)\}$/.exec(v);
    if (ph && placeholderNames.has(ph[1])) return inBlock || n % 2 ? (n % 3 ? `\${${ph[1]}}` : `$${ph[1]}`) : `"\${${ph[1]}}"`;
    const varName = VALUE_VARS[flag];
    if (varName && BARE.test(v) && !placeholderNames.has(varName) && (assigned.get(varName) ?? v) === v) {
      assigned.set(varName, v);
      return n % 2 ? `\${${varName}}` : `$${varName}`;
    }
    if (BARE.test(v)) return v;
    if (inBlock) return null;
    if (/\$\{\w+\}/.test(v) && !/[`"\\]/.test(v.replace(/\$\{\w+\}/g, ''))) return `"${v}"`;
    return !/['$`"\\!]/.test(v) && n % 2 ? `"${v}"` : singleQuote(v);
  };
  const renderArg = ([flag, value]: Arg, inBlock: boolean): string | null => {
    const values = value === null ? [] : Array.isArray(value) ? value : [value];
    const parts = [flag];
    for (const v of values) {
      const r = render(flag, v, inBlock);
      if (r === null) return null;
      parts.push(r);
    }
    return parts.join(' ');
  };

  const args = e.args;
  const blocks: { name: string; lines: string[] }[] = [];
  let direct = args;
  if (e.launcher !== 'python' && args.length > 3) {
    // the longest prefix that a double-quoted block can hold, leaving the last two for the launch line
    let cut = 0;
    const blockLines: string[] = [];
    while (cut < args.length - 2) {
      const r = renderArg(args[cut], true);
      if (r === null) break;
      blockLines.push(r);
      cut++;
    }
    if (cut > 0) {
      const names = n % 2 ? ['GPT_ARGS', 'DATA_ARGS', 'OUTPUT_ARGS'] : ['MODEL_ARGS', 'TRAIN_ARGS', 'CKPT_ARGS'];
      const size = Math.ceil(cut / 3);
      for (let b = 0; b * size < cut; b++) blocks.push({ name: names[b], lines: blockLines.slice(b * size, (b + 1) * size) });
      direct = args.slice(cut);
    }
  }
  const directLines = direct.map((a) => renderArg(a, false)!);

  // value variables (TP=1, CKPT_SAVE_DIR="./ckpt/...") before the blocks that use them
  out.push('');
  for (const [name, value] of assigned) {
    if (name === 'IPS') continue;
    out.push(`${name}=${n % 2 && !/^[0-9]+$/.test(value) ? `"${value}"` : value}`);
  }
  if (distArgs.length) {
    out.push('');
    if (n % 4 === 3) out.push(`DISTRIBUTED_ARGS="${distArgs.join(' ')}"`);
    else out.push('DISTRIBUTED_ARGS="', ...distArgs.map((l, i) => `    ${l}${i < distArgs.length - 1 || n % 2 ? ' \\' : ''}`), '"');
  }
  for (const b of blocks) {
    out.push('', `${b.name}="`, ...b.lines.map((l, i) => `    ${l}${i < b.lines.length - 1 || n % 3 !== 0 ? ' \\' : ''}`), '"');
  }
  for (const flag of e.commented_out_flags ?? []) out.push(`# optional: ${flag} <value> \\`);

  // variables the script uses but never sets (they expand to nothing)
  const unset: string[] = [];
  for (const w of e.warnings ?? []) {
    const m = /^variable \$(\w+) is used but never set/.exec(w);
    if (m && m[1] !== 'NPUS_PER_NODE' && !placeholderNames.has(m[1])) {
      unset.push(`$${m[1]}`);
      expectWarnings.push(`variable $${m[1]} is used but never set`);
    }
  }

  // the launch
  out.push('');
  const head = [...launchPrefix, e.launcher, ...(distArgs.length ? ['$DISTRIBUTED_ARGS'] : []), entryAsWritten].join(' ');
  const body = [...blocks.map((b) => `$${b.name}`), ...unset, ...directLines];
  const teeTarget = (e.other_commands ?? []).map((c) => /^tee (.+)$/.exec(c)?.[1]).find((t) => t !== undefined);
  const orphaned = e.orphaned_args_not_passed ?? [];
  const launch = [head, ...body];
  const last = launch.length - 1;
  const lines = launch.map((l, i) => (i === 0 ? l : `    ${l}`) + (i < last ? ' \\' : ''));
  if (e.log_file !== null) {
    const log = BARE.test(e.log_file) ? e.log_file : `"${e.log_file}"`;
    if (n % 5 === 0) lines[last] += ` > ${log} 2>&1`;
    else {
      lines.push(n % 5 === 1 ? `    2>&1 | tee ${log}` : `    | tee ${log}`);
      lines[last] += ' \\';
    }
  } else if (orphaned.length) {
    // the previous line lost its continuation backslash: these are a separate command
    for (const a of orphaned) {
      const r = renderArg(a, false)!;
      lines.push(`    ${r} \\`);
      for (const m of r.matchAll(/\$\{?(\w+)\}?/g)) if (!placeholderNames.has(m[1])) out.push(`${m[1]}="your ${m[1].toLowerCase()} value"`);
      expectWarnings.push(`a separate command starting with ${a[0]} follows`);
    }
    lines.push(`    | tee ${teeTarget ?? 'logs/train.log'}`);
  } else if (teeTarget) {
    lines.push(`       | tee ${teeTarget}`);
    expectWarnings.push(`'|' at the start of a line`);
  }
  out.push(...lines);
  if (n % 2 && e.commented_out_flags?.length) out.push(`#    ${e.commented_out_flags[0]} \\`);
  return { text: out.join('\n') + '\n', expectWarnings };
}

/** A placeholder's value as the script has it, without its quotes. */
const unquote = (v: string) => v.replace(/^"([\s\S]*)"$/, '$1').replace(/^'([\s\S]*)'$/, '$1');

function compare(p: ParsedScript, e: Example): string[] {
  const expected: Record<string, unknown> = {
    env: e.env,
    sources: e.sources,
    launcher: e.launcher,
    distributed: e.distributed,
    entrypoint: e.entrypoint,
    args: e.args,
    argv: e.argv,
    placeholders: Object.fromEntries(Object.entries(e.placeholders).map(([k, v]) => [k, unquote(v.script_value)])),
    logFile: e.log_file,
    commentedOutFlags: e.commented_out_flags ?? [],
    orphanedArgs: e.orphaned_args_not_passed ?? [],
  };
  const got: Record<string, unknown> = { ...p };
  const problems: string[] = [];
  for (const [k, want] of Object.entries(expected)) {
    try {
      expect(got[k]).toEqual(want);
    } catch {
      problems.push(`${k}: got ${JSON.stringify(got[k]).slice(0, 300)}, want ${JSON.stringify(want).slice(0, 300)}`);
    }
  }
  return problems;
}

describe('parseModelLinkScript on scripts reconstructed from examples.json', () => {
  it('has the whole reference to work from', () => {
    expect(examples.scripts.length).toBe(423);
  });

  it('round-trips every reconstructed script', () => {
    const failures: string[] = [];
    let ok = 0;
    let blocks = 0;
    let placeholders = 0;
    examples.scripts.forEach((e, n) => {
      const r = reconstruct(e, n);
      if (/^ +\$(GPT|MODEL)_ARGS \\$/m.test(r.text)) blocks++;
      if (Object.keys(e.placeholders).length) placeholders++;
      const parsed = parseModelLinkScript(r.text);
      const problems = compare(parsed, e);
      for (const w of r.expectWarnings)
        if (!parsed.warnings.some((pw) => pw.includes(w))) problems.push(`no warning containing "${w}" in ${JSON.stringify(parsed.warnings)}`);
      if (problems.length === 0) ok++;
      else failures.push(`${e.script}:\n  ${problems.join('\n  ')}\n--- script ---\n${r.text}`);
    });
    console.log(
      `shell-script round-trip: ${ok}/${examples.scripts.length} reconstructed scripts parse to their examples.json entry (${blocks} with GPT_ARGS-style blocks, ${placeholders} with placeholders)`,
    );
    // the reconstruction really exercises the interpreter (variable blocks, placeholders)
    expect(blocks).toBeGreaterThan(250);
    expect(placeholders).toBeGreaterThan(250);
    expect(failures.slice(0, 3)).toEqual([]);
    expect(ok).toBe(examples.scripts.length);
  });

  it('reconstructs a typical pretrain script the way ModelLink writes them', () => {
    const n = examples.scripts.findIndex((e) => e.script === 'examples/aquila/pretrain_aquila_7b_ptd.sh');
    const { text } = reconstruct(examples.scripts[n], n);
    expect(text).toMatch(/^DISTRIBUTED_ARGS="$/m);
    expect(text).toMatch(/^TOKENIZER_PATH="your tokenizer path"/m);
    expect(text).toMatch(/WORLD_SIZE=\$\(\(/);
    expect(text).toMatch(/^torchrun \$DISTRIBUTED_ARGS pretrain_gpt.py \\$/m);
    expect(text).toMatch(/(\| tee|>) logs\/train_aquila_7b_ptd.log/);
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-written cases

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'scripts');
const fixture = (name: string) => parseModelLinkScript(fs.readFileSync(path.join(FIXTURES, name), 'utf8'));

describe('parseModelLinkScript: hand-written cases', () => {
  it('parses the typical script shape', () => {
    const p = fixture('typical.sh');
    expect(p.env).toEqual({ CUDA_DEVICE_MAX_CONNECTIONS: '1' });
    expect(p.sources).toEqual(['/usr/local/Ascend/ascend-toolkit/set_env.sh']);
    expect(p.launcher).toBe('torchrun');
    expect(p.distributed).toEqual({ nproc_per_node: 8, nnodes: 2, node_rank: 0, master_addr: 'localhost', master_port: 6000, world_size: 16 });
    expect(p.entrypoint).toBe('pretrain_gpt.py');
    expect(p.args).toEqual([
      ['--tensor-model-parallel-size', '1'],
      ['--pipeline-model-parallel-size', '2'],
      ['--lora-target-modules', ['query_key_value', 'dense']],
      ['--lr', '1.25e-6'],
      ['--tokenizer-model', '${TOKENIZER_MODEL}'],
      ['--seed', '-1'],
      ['--distributed-backend', 'nccl'],
      ['--load', '${CKPT_LOAD_DIR}'],
      ['--save', './ckpt/llama-2-7b'],
    ]);
    expect(p.placeholders).toEqual({ CKPT_LOAD_DIR: 'your model ckpt path', TOKENIZER_MODEL: '<tokenizer model>' });
    expect(p.logFile).toBe('logs/train.log');
    expect(p.argv.slice(0, 12)).toEqual([
      'torchrun',
      '--nproc_per_node',
      '8',
      '--nnodes',
      '2',
      '--node_rank',
      '0',
      '--master_addr',
      'localhost',
      '--master_port',
      '6000',
      'pretrain_gpt.py',
    ]);
    expect(p.warnings).toEqual([expect.stringContaining('value <tokenizer model> is not valid bash')]);
  });

  it('evaluates $(( )) arithmetic: + - * / %, precedence, parentheses, bare and $ names', () => {
    const p = parseModelLinkScript(String.raw`
NPUS_PER_NODE=8
NNODES=4
WORLD_SIZE=$(($NPUS_PER_NODE*$NNODES))
DP=$(( WORLD_SIZE / (2 * 2) ))
GBS=$((DP * 4 + 10 % 3 - 1))
NEG=$((-3 + 1))
python train.py --world-size $WORLD_SIZE --dp $DP --gbs "$GBS" --neg $NEG --pow $((2**10))
`);
    expect(p.launcher).toBe('python');
    expect(p.entrypoint).toBe('train.py');
    expect(p.args).toEqual([
      ['--world-size', '32'],
      ['--dp', '8'],
      ['--gbs', '32'],
      ['--neg', '-2'],
      ['--pow', '1024'],
    ]);
    expect(p.warnings).toEqual([]);
  });

  it('expands a variable the script never sets to nothing, and says so', () => {
    const p = parseModelLinkScript(String.raw`
python inference.py \
    --load ./ckpt \
    $MOE_ARGS \
    --task $TASK \
    --seed 42
`);
    expect(p.args).toEqual([
      ['--load', './ckpt'],
      ['--task', null],
      ['--seed', '42'],
    ]);
    expect(p.warnings).toEqual([
      'variable $MOE_ARGS is used but never set in the script; bash expands it to nothing',
      'variable $TASK is used but never set in the script; bash expands it to nothing',
    ]);
  });

  it('keeps quoted values with spaces as one argument; ${X:-default}; export keeps inherited variables', () => {
    const p = fixture('quoting.sh');
    expect(p.env).toEqual({ LD_LIBRARY_PATH: '/usr/local/lib:${LD_LIBRARY_PATH}' });
    expect(p.args).toEqual([
      ['--map-keys', '{"prompt":"question", "query":"", "system":"system"}'],
      ['--name', 'llama 2 run'],
      ['--name2', ['llama', '2', 'run']],
      ['--modules', ['query_key_value', 'dense']],
      ['--quoted-modules', 'query_key_value dense'],
      ['--ansi', 'a\tb'],
      ['--empty', ''],
      ['--out', './out/data'],
    ]);
    expect(p.placeholders).toEqual({});
    expect(p.warnings).toEqual([]);
  });

  it('tells placeholders from values', () => {
    for (const v of ['your data path', 'Your tokenizer path', 'merge file for gpt training', '<master_addr>', 'your_data_path'])
      expect(looksLikePlaceholder(v), v).toBe(true);
    for (const v of [
      './ckpt/llama-2-7b',
      'localhost',
      'mmlu',
      '',
      '\n    --seq-length 4096 \\\n',
      'query_key_value dense',
      '0.5 a_text_document 0.5 b_text_document',
    ])
      expect(looksLikePlaceholder(v), v).toBe(false);
  });

  it('ignores comments, trailing comments and commented-out flags; a comment after a continuation ends the command', () => {
    const p = fixture('comments.sh');
    expect(p.sources).toEqual(['/usr/local/Ascend/ascend-toolkit/set_env.sh']);
    expect(p.entrypoint).toBe('preprocess_data.py');
    expect(p.argv[1]).toBe('./preprocess_data.py');
    expect(p.args).toEqual([
      ['--input', './dataset/train.parquet'],
      ['--tokenizer-name-or-path', './model_from_hf/llama-2-hf/'],
      ['--handler-name', 'AlpacaStyleInstructionHandler'],
      ['--prompt-type', 'llama2'],
    ]);
    expect(p.commentedOutFlags).toEqual(['--lora-load', '--map-keys']);
    expect(p.otherCommands).toEqual(['mkdir ./finetune_dataset']);
    // `--workers 4` is its own command: bash does not pass it
    expect(p.orphanedArgs).toEqual([['--workers', '4']]);
    expect(p.warnings).toEqual([expect.stringContaining('a separate command starting with --workers follows')]);
  });

  it('parses python -m torch.distributed.launch, --opt=value launcher options and VAR=value prefixes', () => {
    const p = parseModelLinkScript(String.raw`
export HCCL_CONNECT_TIMEOUT=1200
MASTER_ADDR="your master node IP"
DISTRIBUTED_ARGS="--nproc_per_node 2 --nnodes=1 --node_rank 0 --master_addr $MASTER_ADDR --master_port 6001"
ASCEND_RT_VISIBLE_DEVICES=0,1 python -m torch.distributed.launch $DISTRIBUTED_ARGS evaluation.py \
    --task-data-path ./mmlu/test \
    --task mmlu \
    --lr=1e-4 \
    --seed 42 | tee -a logs/eval.log
`);
    expect(p.launcher).toBe('python -m torch.distributed.launch');
    expect(p.entrypoint).toBe('evaluation.py');
    expect(p.env).toEqual({ HCCL_CONNECT_TIMEOUT: '1200', ASCEND_RT_VISIBLE_DEVICES: '0,1' });
    expect(p.distributed).toEqual({ nproc_per_node: 2, nnodes: 1, node_rank: 0, master_addr: '${MASTER_ADDR}', master_port: 6001, world_size: 2 });
    expect(p.placeholders).toEqual({ MASTER_ADDR: 'your master node IP' });
    expect(p.args).toEqual([
      ['--task-data-path', './mmlu/test'],
      ['--task', 'mmlu'],
      ['--lr', '1e-4'],
      ['--seed', '42'],
    ]);
    expect(p.logFile).toBe('logs/eval.log');
  });

  it('takes the log file from a trailing 2>&1 | tee, or from > redirection', () => {
    const tee = parseModelLinkScript('torchrun --nproc_per_node 8 pretrain_gpt.py \\\n    --bf16 \\\n    2>&1 | tee logs/pretrain.log\n');
    expect(tee.logFile).toBe('logs/pretrain.log');
    expect(tee.args).toEqual([['--bf16', null]]);
    expect(tee.distributed).toEqual({ nproc_per_node: 8 });
    const redirect = parseModelLinkScript('LOG_DIR=./logs\nmkdir -p $LOG_DIR && python convert_ckpt.py --model-type GPT > ${LOG_DIR}/convert.log 2>&1\n');
    expect(redirect.logFile).toBe('./logs/convert.log');
    expect(redirect.otherCommands).toEqual(['mkdir -p $LOG_DIR']);
    expect(parseModelLinkScript('python convert_ckpt.py --model-type GPT\n').logFile).toBeNull();
  });

  it('warns about what it cannot understand: a for loop, $(command) in an argument', () => {
    const p = fixture('multinode-loop.sh');
    expect(p.distributed).toEqual({ nproc_per_node: 8, nnodes: 2, node_rank: '${NODE_RANK}', master_addr: '10.0.0.1', world_size: 16 });
    expect(p.placeholders).toEqual({ NODE_RANK: '' });
    expect(p.args).toEqual([
      ['--load', '$(ls -d ckpt/iter_* | tail -1)'],
      ['--seed', '42'],
    ]);
    expect(p.warnings).toEqual([
      expect.stringMatching(/^line 6: 'for' loop is not interpreted .*NODE_RANK/),
      expect.stringContaining('variable $NODE_RANK is computed at run time'),
      expect.stringMatching(/^line 13: command substitution \$\(ls -d ckpt\/iter_\* \| tail -1\) in the launch command is not evaluated/),
    ]);
  });

  it('says so when the launch command is inside a loop, and when there is no launch at all', () => {
    const loop = parseModelLinkScript('for TASK in mmlu boolq; do\n  python evaluation.py --task $TASK\ndone\n');
    expect(loop.entrypoint).toBe('');
    expect(loop.warnings).toEqual([
      expect.stringContaining("'for' loop is not interpreted (linkflow reads a subset of bash); it contains a launch command (line 2)"),
      expect.stringContaining('no launch command found'),
    ]);
  });

  it('reports bash pitfalls: a pipe at the start of a line, quotes and # inside a variable', () => {
    const pipe = parseModelLinkScript('python inference.py \\\n    --seed 42\n    | tee logs/generate.log\n');
    expect(pipe.logFile).toBeNull();
    expect(pipe.args).toEqual([['--seed', '42']]);
    expect(pipe.warnings).toEqual([expect.stringContaining("line 3: '|' at the start of a line")]);

    const p = parseModelLinkScript('ARGS="\n  --prompt \\"a b\\" \\\n  # --not-a-comment\n"\npython inference.py $ARGS\n');
    // what bash passes: quotes stay, words split, '#' is an argument
    expect(p.argv).toEqual(['python', 'inference.py', '--prompt', '"a', 'b"', '#', '--not-a-comment']);
    expect(p.warnings).toEqual([expect.stringContaining('quote characters'), expect.stringContaining("'#' inside a variable's value")]);
  });

  it('never runs what the script says', () => {
    const marker = path.join(os.tmpdir(), `linkflow-shell-script-${process.pid}-${Date.now()}`);
    const p = parseModelLinkScript(
      `X=$(touch ${marker}.a)\nY=\`touch ${marker}.b\`\ntouch ${marker}.c\npython train.py --x "$X" --y $Y --z $(touch ${marker}.d)\n`,
    );
    for (const s of ['a', 'b', 'c', 'd']) expect(fs.existsSync(`${marker}.${s}`)).toBe(false);
    expect(p.args).toEqual([
      ['--x', '${X}'],
      ['--y', '${Y}'],
      ['--z', `$(touch ${marker}.d)`],
    ]);
    expect(p.placeholders).toEqual({ X: `$(touch ${marker}.a)`, Y: `\`touch ${marker}.b\`` });
    const parser = ['shell-script.ts', ...fs.readdirSync(path.join(ROOT, 'import', 'shell')).map((f) => path.join('shell', f))];
    const source = parser.map((f) => fs.readFileSync(path.join(ROOT, 'import', f), 'utf8')).join('\n');
    expect(source).not.toMatch(/child_process|node:vm|\beval\(|new Function/);
  });

  it('reports an unterminated quote instead of throwing', () => {
    const p = parseModelLinkScript('DATA="unterminated\npython train.py --data $DATA\n');
    expect(p.entrypoint).toBe('');
    expect(p.warnings[0]).toMatch(/line 1: unterminated double quote: the rest of the script is not parsed/);
  });

  it('groups arguments as examples.json does', () => {
    expect(groupArgs(['--a', '--b', '1', '--c', 'x', 'y', '--d', '-1', '--e=5']).args).toEqual([
      ['--a', null],
      ['--b', '1'],
      ['--c', ['x', 'y']],
      ['--d', '-1'],
      ['--e', '5'],
    ]);
    expect(groupArgs(['pos', '--a']).positional).toEqual(['pos']);
  });
});
