/**
 * `linkflow presets`: the model presets of each framework — ModelLink's zoo with its performance table's
 * throughput, then each MindSpeed-LLM version's with the rows MindSpeed-LLM publishes (file, line, commit).
 */
import { FLAVOURS, frameworkName } from '../frameworks/index.ts';
import { getMindspeedPreset, mindspeedPresetNames, mindspeedPresetVersions } from '../frameworks/mindspeed-llm/presets.ts';
import { getPreset, presetNames, type Preset, type PublishedRow } from '../frameworks/modellink/presets.ts';

interface Options {
  json?: boolean;
  flavour?: string;
  version?: string;
}

interface Group {
  title?: string;
  presets: Preset[];
}

function groups(opts: Options): Group[] | string {
  if (opts.flavour !== undefined && !(FLAVOURS as readonly string[]).includes(opts.flavour))
    return `unknown flavour "${opts.flavour}"; presets exist for ${FLAVOURS.join(', ')}`;
  if (opts.version !== undefined && opts.flavour !== 'mindspeed-llm') return '--version needs --flavour mindspeed-llm';
  const versions = opts.version === undefined ? mindspeedPresetVersions() : [opts.version];
  if (opts.version !== undefined && !mindspeedPresetVersions().includes(opts.version))
    return `MindSpeed-LLM ${opts.version} has no generated presets; the versions with presets are ${mindspeedPresetVersions().join(', ')}`;
  const out: Group[] = [];
  if (opts.flavour !== 'mindspeed-llm') out.push({ presets: presetNames().map((n) => getPreset(n)!) });
  if (opts.flavour !== 'modellink')
    for (const v of versions) {
      const presets = mindspeedPresetNames(v).map((n) => getMindspeedPreset(v, n)!);
      const commit = presets[0]?.framework?.commit.slice(0, 8) ?? '';
      out.push({
        title: `${frameworkName({ flavour: 'mindspeed-llm', version: v })} (examples at Ascend/MindSpeed-LLM@${commit}; spec: modellink: { flavour: mindspeed-llm, version: ${v} })`,
        presets,
      });
    }
  return out;
}

const published = (r: PublishedRow) => `${r.file}#L${r.line}@${r.commit.slice(0, 8)}: ${r.cells.join(' / ')} (${r.columns.at(-1)})`;

function line(p: Preset, width: number): string {
  const r = p.reference;
  const layout = `reference ${r.nodes}x${r.devicesPerNode} TP${r.tp} PP${r.pp}`;
  const throughput = r.tokensPerSecondPerDevice ? `, ${r.tokensPerSecondPerDevice} tokens/s/device` : '';
  const rows = p.published.length > 0 ? `; published ${p.published.map(published).join('; ')}` : '';
  return `${p.name.padEnd(width)} ${p.description} (${p.impls.join(', ')}; ${layout}${throughput}${rows})`;
}

export function presetsCommand(opts: Options): number {
  const found = groups(opts);
  if (typeof found === 'string') {
    console.error(`linkflow presets: ${found}`);
    return 2;
  }
  if (opts.json) {
    console.log(
      JSON.stringify(
        found.flatMap((g) => g.presets),
        null,
        2,
      ),
    );
    return 0;
  }
  const width = Math.max(...found.flatMap((g) => g.presets.map((p) => p.name.length)));
  found.forEach((g, i) => {
    if (g.title) console.log(`${i > 0 ? '\n' : ''}${g.title}`);
    for (const p of g.presets) console.log(line(p, width));
  });
  return 0;
}
