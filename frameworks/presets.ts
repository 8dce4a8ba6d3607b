/**
 * Which preset a name means, per framework. ModelLink's zoo (frameworks/modellink/presets.json) and each
 * MindSpeed-LLM version's (frameworks/mindspeed-llm/presets.json) share ids (llama2-7b is in both, with the
 * shape each framework's scripts pass), so the pipeline's framework decides: on mindspeed-llm <version> a
 * name is first that version's preset, and a name only ModelLink's zoo has (tiny, the demo's model; models
 * the version's examples dropped) is ModelLink's.
 */
import type { FrameworkChoice } from './framework.ts';
import { getMindspeedPreset, mindspeedPresetNames } from './mindspeed-llm/presets.ts';
import { getPreset, presetNames, type Preset } from './modellink/presets.ts';

export function presetFor(name: string, framework: FrameworkChoice): Preset | undefined {
  if (framework.flavour === 'mindspeed-llm') return getMindspeedPreset(framework.version, name) ?? getPreset(name);
  return getPreset(name);
}

/** Every name presetFor resolves on this framework, sorted. */
export function presetNamesFor(framework: FrameworkChoice): string[] {
  if (framework.flavour !== 'mindspeed-llm') return presetNames();
  return [...new Set([...mindspeedPresetNames(framework.version), ...presetNames()])].sort();
}
