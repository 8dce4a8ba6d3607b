/** `linkflow render`: each stage's command as argv (JSON) or as a safely quoted shell line. */
import { plannedArgv, type PipelinePlan } from '../modellink/plan.ts';

/** POSIX single-quoting: safe for any value, including spaces, quotes and $. */
function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function renderPlan(plan: PipelinePlan, format: 'argv' | 'sh'): string {
  const out: string[] = [];
  for (const stage of plan.stages) {
    out.push(`# stage ${stage.name} (${stage.kind}) in ${stage.cwd}${stage.training ? '; later attempts resume with --load ' + stage.training.saveDir : ''}`);
    const argv = plannedArgv(stage);
    if (format === 'argv') {
      out.push(JSON.stringify(argv));
      continue;
    }
    const env = Object.entries(stage.env).map(([k, v]) => `${k}=${shellQuote(v)}`);
    const source = stage.setupScript ? `source ${shellQuote(stage.setupScript)} && ` : '';
    out.push(`(cd ${shellQuote(stage.cwd)} && ${source}${[...env, ...argv.map(shellQuote)].join(' ')})`);
  }
  return out.join('\n');
}
