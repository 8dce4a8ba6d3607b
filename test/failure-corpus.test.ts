/**
 * The failure corpus: real logs from public threads (failures/corpus/<class>/<slug>.log, with
 * <slug>.json: source, title, rootCause, class, exitCode?, platform, launcher, framework), classified
 * by the path `linkflow diagnose` takes (LogDiagnosis: the attempt's log window, then diagnoseLog),
 * with the exit code the thread gives when it gives one. Prints accuracy per class for the corpus and
 * for its held-out part (logs no rule was written from), and fails below 95 % on the corpus.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitStatusOf, LogDiagnosis } from '../failures/diagnose.ts';
import { FAILURE_CLASSES, type FailureClass } from '../failures/failures.ts';
import { splitRanks } from '../failures/ranks.ts';
import { BUILT_IN_RULES } from '../failures/rules.ts';
import { PROJECT_ROOT } from '../common/project-root.ts';

const CORPUS = path.join(PROJECT_ROOT, 'failures', 'corpus');
const HOLDOUT = path.join(CORPUS, 'holdout');

interface Entry {
  file: string;
  label: FailureClass;
  exitCode?: number;
  source: string;
}

function entries(root: string): Entry[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((d) => d !== 'holdout' && fs.statSync(path.join(root, d)).isDirectory())
    .flatMap((dir) =>
      fs
        .readdirSync(path.join(root, dir))
        .filter((f) => f.endsWith('.json'))
        .map((f) => {
          const meta = JSON.parse(fs.readFileSync(path.join(root, dir, f), 'utf8')) as { class: FailureClass; exitCode?: number; source: string };
          return { file: path.join(root, dir, f.replace(/\.json$/, '.log')), label: meta.class, exitCode: meta.exitCode, source: meta.source };
        }),
    );
}

function classify(e: Entry) {
  const d = new LogDiagnosis();
  for (const line of fs.readFileSync(e.file, 'utf8').split(/\r?\n/)) d.push(line);
  return d.finish(e.exitCode !== undefined ? exitStatusOf(e.exitCode) : undefined).diagnosis.failure;
}

interface Score {
  total: number;
  right: number;
  misses: string[];
}

function score(set: Entry[], showMisses: boolean): { perClass: Map<FailureClass, Score>; all: Score } {
  const perClass = new Map<FailureClass, Score>();
  const all: Score = { total: 0, right: 0, misses: [] };
  for (const e of set) {
    const got = classify(e);
    const s = perClass.get(e.label) ?? { total: 0, right: 0, misses: [] };
    perClass.set(e.label, s);
    s.total++;
    all.total++;
    if (got?.class === e.label) {
      s.right++;
      all.right++;
    } else if (showMisses) {
      const miss = `${path.relative(CORPUS, e.file)}: ${got?.class ?? 'no failure'} (${got?.reason.slice(0, 120) ?? ''}), labelled ${e.label}`;
      s.misses.push(miss);
      all.misses.push(miss);
    }
  }
  return { perClass, all };
}

const pct = (s: Score) => (s.total ? ((100 * s.right) / s.total).toFixed(1) : '-');

function report(name: string, r: ReturnType<typeof score>): string {
  const rows = [...r.perClass.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([cls, s]) => `  ${cls.padEnd(14)} ${String(s.right).padStart(3)}/${String(s.total).padEnd(3)} ${pct(s)} %`);
  return [`${name}: ${r.all.right}/${r.all.total} = ${pct(r.all)} %`, ...rows, ...r.all.misses.map((m) => `  miss: ${m}`)].join('\n');
}

const main = entries(CORPUS);
const holdout = entries(HOLDOUT);

describe('the failure corpus', () => {
  it('every log has its metadata: a source link, a known class', () => {
    expect(main.length).toBeGreaterThan(0);
    for (const e of [...main, ...holdout]) {
      expect(fs.existsSync(e.file), `${e.file} (the .log beside its .json)`).toBe(true);
      expect(FAILURE_CLASSES, e.file).toContain(e.label);
      expect(e.source, e.file).toMatch(/^https?:\/\//);
    }
  });

  it('holds what issue 17 asks for: at least 120 real logs, at least 8 of each main class', () => {
    expect(main.length + holdout.length).toBeGreaterThanOrEqual(120);
    const counts = new Map<FailureClass, number>();
    for (const e of [...main, ...holdout]) counts.set(e.label, (counts.get(e.label) ?? 0) + 1);
    const classes: FailureClass[] = ['out-of-memory', 'communication', 'hang', 'bad-arguments', 'missing-input', 'killed', 'segfault', 'nan-loss', 'exception'];
    for (const cls of classes) expect(counts.get(cls) ?? 0, cls).toBeGreaterThanOrEqual(8);
  });

  it('diagnose names the root cause of at least 95 % of the corpus, and reports the held-out part', () => {
    const r = score(main, true);
    console.log(report('failure corpus', r));
    if (holdout.length) console.log(report('held-out corpus (never read while writing rules)', score(holdout, false)));
    expect(r.all.right / r.all.total).toBeGreaterThanOrEqual(0.95);
  });

  it('lists the rules that match exactly one log (a rule written for one log is a smell)', () => {
    const texts = main.map((e) => splitRanks(fs.readFileSync(e.file, 'utf8').split(/\r?\n/)).map((l) => l.text));
    const matches = BUILT_IN_RULES.map((rule) => ({
      rule: rule.name ?? String(rule.pattern),
      files: texts.filter((lines) => lines.some((l, i) => rule.pattern.test(l) && (rule.accept?.(lines, i) ?? true))).length,
    }));
    const single = matches.filter((m) => m.files === 1).map((m) => m.rule);
    console.log(`rules matching exactly one corpus log: ${single.length ? single.join(', ') : 'none'}`);
    // Each family of the built-in rules is seen in several real logs; CANN codes are a table (one sighting can be all
    // there is), and these families are known from more threads than the corpus holds yet:
    const known: Record<string, string> = {
      // Megatron's tokenizers and many loaders: `assert os.path.isfile(path), path`.
      'existence check': 'megatron/training/tokenizer, sentencepiece loaders',
      // The kernel's (mm/oom_kill.c: `Out of memory: Killed process`) and Slurm's cgroup (`oom-kill event`) messages.
      "host's OOM killer": 'mm/oom_kill.c, slurmstepd cgroup',
      // gdb's `bt` of a core dump, which segfault threads paste.
      'core dump backtrace': 'gdb backtraces',
    };
    expect(single.filter((r) => !r.startsWith('CANN ') && !(r in known))).toEqual([]);
  });
});
