/** `linkflow presets`: the model presets, with ModelLink's published throughput. */
import { getPreset, presetNames } from '../frameworks/modellink/presets.ts';

export function presetsCommand(opts: { json?: boolean }): void {
  const presets = presetNames().map((n) => getPreset(n)!);
  if (opts.json) {
    console.log(JSON.stringify(presets, null, 2));
    return;
  }
  const width = Math.max(...presets.map((p) => p.name.length));
  for (const p of presets)
    console.log(
      `${p.name.padEnd(width)} ${p.description} (${p.impls.join(', ')}; reference ${p.reference.nodes}x${p.reference.devicesPerNode} TP${p.reference.tp} PP${p.reference.pp}${p.reference.tokensPerSecondPerDevice ? `, ${p.reference.tokensPerSecondPerDevice} tokens/s/device` : ''})`,
    );
}
