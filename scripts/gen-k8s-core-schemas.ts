/**
 * Writes reference/kubernetes/core-schemas.json: the OpenAPI v3 schemas of the core kinds linkflow's
 * pods flavour creates (batch/v1 Job, v1 Service, scheduling.k8s.io/v1beta1 PodGroup) and of every
 * schema they refer to, as kube-apiserver v1.37.2 (built from k8s.io/kubernetes v1.37.2 by
 * scripts/build-k8s.sh) serves them at /openapi/v3. `linkflow validate` checks a gang against them
 * when no cluster answers (executors/kubernetes/schema.ts). Starts the test cluster for the purpose:
 *
 *   LINKFLOW_K8S_BIN=... node --import tsx scripts/gen-k8s-core-schemas.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { startKubernetesCluster } from '../testkit/kubernetes/index.ts';
import { ROOT } from '../testkit/specs.ts';

const GROUPS = {
  'api/v1': ['io.k8s.api.core.v1.Service'],
  'apis/batch/v1': ['io.k8s.api.batch.v1.Job'],
  'apis/scheduling.k8s.io/v1beta1': ['io.k8s.api.scheduling.v1beta1.PodGroup'],
};

type Schema = Record<string, unknown>;
const cluster = await startKubernetesCluster({ nodes: 1 });
try {
  const all: Record<string, Schema> = {};
  for (const group of Object.keys(GROUPS)) {
    const doc = await cluster.api.get<{ components: { schemas: Record<string, Schema> } }>(`/openapi/v3/${group}`);
    Object.assign(all, doc.components.schemas);
  }
  const version = await cluster.api.get<{ gitVersion: string }>('/version');
  const kept: Record<string, Schema> = {};
  // Descriptions are documentation, not checks: left out (the source above has them).
  const strip = (s: Schema): Schema => JSON.parse(JSON.stringify(s, (k, v: unknown) => (k === 'description' ? undefined : v))) as Schema;
  const visit = (name: string) => {
    if (kept[name] || !all[name]) return;
    kept[name] = strip(all[name]);
    JSON.stringify(all[name], (k, v: unknown) => {
      if (k === '$ref' && typeof v === 'string') visit(v.replace('#/components/schemas/', ''));
      return v;
    });
  };
  Object.values(GROUPS).flat().forEach(visit);
  const out = {
    source: `kube-apiserver ${version.gitVersion} /openapi/v3 (${Object.keys(GROUPS).join(', ')}), written by scripts/gen-k8s-core-schemas.ts`,
    kinds: {
      'batch/v1/Job': 'io.k8s.api.batch.v1.Job',
      'v1/Service': 'io.k8s.api.core.v1.Service',
      'scheduling.k8s.io/v1beta1/PodGroup': 'io.k8s.api.scheduling.v1beta1.PodGroup',
    },
    schemas: Object.fromEntries(Object.entries(kept).sort(([a], [b]) => a.localeCompare(b))),
  };
  const file = path.join(ROOT, 'reference', 'kubernetes', 'core-schemas.json');
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`${file}: ${Object.keys(kept).length} schemas, ${fs.statSync(file).size} bytes`);
} finally {
  await cluster.stop();
}
