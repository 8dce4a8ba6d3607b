/**
 * The stand-in CRDs of the job kinds whose controllers cannot run here (Volcano's Job and PodGroup,
 * MindCluster's AscendJob), carried in reference/kubernetes/ with their sources (reference/README.md).
 * installCrds() puts them into a test cluster so a server-side dry run checks objects against them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { KubeObject } from './api.ts';

export const REFERENCE_CRD_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'reference', 'kubernetes');

/** Every CRD in reference/kubernetes/, parsed. */
export function referenceCrds(): KubeObject[] {
  return fs
    .readdirSync(REFERENCE_CRD_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => YAML.parse(fs.readFileSync(path.join(REFERENCE_CRD_DIR, f), 'utf8')) as KubeObject);
}
