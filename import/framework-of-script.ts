/**
 * Which framework and version wrote a script, from what it runs and passes: MindSpeed-LLM's own
 * entry points (posttrain_gpt.py, convert_ckpt_v2.py) and the flags each version's parser defines.
 */
import path from 'node:path';
import type { Arg } from '../frameworks/modellink/args.ts';
import { allFrameworks, defaultVersion, type Entrypoint, type Framework, type FrameworkChoice } from '../frameworks/index.ts';

const MSL_ONLY_ENTRYPOINTS = ['posttrain_gpt.py', 'convert_ckpt_v2.py'];

/** The versions whose parser of `entrypoint` defines every flag of the script. */
function definingAll(entrypoint: string, args: Arg[]): Framework[] {
  return allFrameworks().filter(
    (f) => f.entrypoints.includes(entrypoint as Entrypoint) && args.every(([flag]) => f.isKnownFlag(entrypoint as Entrypoint, flag)),
  );
}

/**
 * ModelLink when its parser takes the script as written (and it is not a MindSpeed-LLM entry point);
 * otherwise the MindSpeed-LLM version that does: the default (defaultVersion) if it is one of them, else the newest.
 * A script no version takes whole is MindSpeed-LLM's default when it runs a MindSpeed-LLM entry point, else ModelLink's.
 */
export function frameworkOfScript(entrypointPath: string, args: Arg[]): FrameworkChoice {
  const entrypoint = path.basename(entrypointPath);
  const mslEntrypoint = MSL_ONLY_ENTRYPOINTS.includes(entrypoint);
  const candidates = definingAll(entrypoint, args);
  const modellink = candidates.find((f) => f.flavour === 'modellink');
  if (modellink && !mslEntrypoint) return { flavour: 'modellink', version: modellink.version };
  const versions = candidates.filter((f) => f.flavour === 'mindspeed-llm');
  const preferred = versions.find((f) => f.version === defaultVersion('mindspeed-llm')) ?? versions.at(-1);
  if (preferred) return { flavour: 'mindspeed-llm', version: preferred.version };
  const flavour = mslEntrypoint ? 'mindspeed-llm' : 'modellink';
  return { flavour, version: defaultVersion(flavour) };
}
