/**
 * The schemas `linkflow validate` checks a gang against when no cluster answers, carried in the
 * repository with their sources (reference/README.md): reference/kubernetes/core-schemas.json (the
 * core kinds, as kube-apiserver v1.37.2 serves them) and the CRDs of Volcano's Job and MindCluster's
 * AscendJob (reference/kubernetes/*.yaml).
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { PROJECT_ROOT } from '../../../common/project-root.ts';
import type { KubeObject } from '../manifests.ts';
import { checkAgainst, type Schema } from '../schema.ts';

const DIR = path.join(PROJECT_ROOT, 'reference', 'kubernetes');

interface Carried {
  components: Record<string, Schema>;
  byKind: Record<string, Schema>;
  sources: string[];
}

function carried(): Carried {
  const core = JSON.parse(fs.readFileSync(path.join(DIR, 'core-schemas.json'), 'utf8')) as {
    source: string;
    kinds: Record<string, string>;
    schemas: Record<string, Schema>;
  };
  const byKind: Record<string, Schema> = Object.fromEntries(Object.entries(core.kinds).map(([k, name]) => [k, { $ref: `#/components/schemas/${name}` }]));
  const sources = [core.source];
  for (const f of fs.readdirSync(DIR).filter((x) => x.endsWith('.yaml'))) {
    const crd = YAML.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as {
      spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
    };
    for (const v of crd.spec.versions) byKind[`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`] = v.schema.openAPIV3Schema;
    sources.push(`reference/kubernetes/${f}`);
  }
  return { components: core.schemas, byKind, sources };
}

/** Each gang's objects against the carried schemas: "stage S: Kind name: path: problem". */
export function checkOffline(gangs: { stage: string; objects: KubeObject[] }[]): { how: string; problems: string[] } {
  const c = carried();
  const problems: string[] = [];
  for (const { stage, objects } of gangs)
    for (const obj of objects) {
      const schema = c.byKind[`${obj.apiVersion}/${obj.kind}`];
      if (!schema) {
        problems.push(`stage ${stage}: ${obj.kind} ${obj.metadata.name}: linkflow carries no schema for ${obj.apiVersion} ${obj.kind}`);
        continue;
      }
      for (const p of checkAgainst(obj, schema, c.components)) problems.push(`stage ${stage}: ${obj.kind} ${obj.metadata.name}: ${p.replace(/^\./, '')}`);
    }
  return { how: `the schemas linkflow carries (${c.sources.join('; ')})`, problems };
}
