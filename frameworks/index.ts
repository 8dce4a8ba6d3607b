/** The frameworks linkflow drives, by flavour and version. */
import { FLAVOURS, frameworkName, type Flavour, type Framework, type FrameworkChoice } from './framework.ts';
import { mindspeedFramework } from './mindspeed-llm/framework.ts';
import { MINDSPEED_VERSIONS } from './mindspeed-llm/versions.ts';
import { MODELLINK_VERSION, modellinkFramework } from './modellink/framework.ts';

export type { Converter, Entrypoint, Flavour, Framework, FrameworkChoice, Trainer } from './framework.ts';
export { FLAVOURS, frameworkName };

/** Each flavour's versions, oldest first; the first flavour's only version is the default. */
export const FRAMEWORK_VERSIONS: Record<Flavour, readonly string[]> = {
  modellink: [MODELLINK_VERSION],
  'mindspeed-llm': MINDSPEED_VERSIONS,
};

/**
 * What a pipeline that names no version drives: ModelLink; mindspeed-llm without a version: 26.1.0, the release
 * MindSpeed-LLM maintains today (README.md 版本维护策略 of branch 26.1.0; 2.3.0 reached EOL on 2026/6/30).
 */
export function defaultVersion(flavour: Flavour): string {
  return flavour === 'modellink' ? MODELLINK_VERSION : '26.1.0';
}

export const DEFAULT_FRAMEWORK: FrameworkChoice = { flavour: 'modellink', version: MODELLINK_VERSION };

export function getFramework(choice: FrameworkChoice): Framework | undefined {
  return choice.flavour === 'modellink' ? (choice.version === MODELLINK_VERSION ? modellinkFramework : undefined) : mindspeedFramework(choice.version);
}

/** Every framework linkflow knows, for "which version has it" messages and the README's table. */
export function allFrameworks(): Framework[] {
  return FLAVOURS.flatMap((flavour) => FRAMEWORK_VERSIONS[flavour].map((version) => getFramework({ flavour, version })!));
}

/** "ModelLink d4feda79, MindSpeed-LLM 2.3.0": the frameworks for which `has` holds, to name in a message. */
export function versionsWith(has: (framework: Framework) => boolean): string {
  const names = allFrameworks()
    .filter(has)
    .map((f) => f.name);
  return names.length > 0 ? names.join(', ') : 'no version linkflow knows';
}

export function isKnownVersion(choice: FrameworkChoice): boolean {
  return getFramework(choice) !== undefined;
}

export { frameworkName as nameOf };
