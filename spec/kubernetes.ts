/**
 * `cluster.kubernetes`: where stages run when each attempt is a gang of pods (executors/kubernetes/).
 * The worker that submits finds the cluster as kubectl does (KUBECONFIG, ~/.kube/config, or the pod's
 * service account); nothing of the cluster's credentials belongs in a spec.
 */
import { z } from 'zod';
import { nonEmpty, positiveInt, nonNegativeInt } from './schema-parts.ts';

/** A DNS-1123 label: namespaces, service accounts, claims (as the API server checks them). */
const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a lower-case name such as "training" (letters, digits, "-")')
  .max(63);
/** A DNS-1123 subdomain: priority classes, queues. */
const dnsSubdomain = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'expected a lower-case name such as "high-priority"')
  .max(253);
/** An extended resource name as a device plugin advertises it ("huawei.com/Ascend910", "huawei.com/npu"). */
const resourceName = z.string().regex(/^([a-z0-9.-]+\/)?[A-Za-z0-9][-A-Za-z0-9_.]*$/, 'expected a resource name such as "huawei.com/Ascend910"');
/** A label key or value (the prefix part of a key optional). */
const labelKey = z.string().regex(/^([a-z0-9.-]+\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'expected a label key such as "accelerator"');
const labelValue = z
  .string()
  .regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/, 'expected a label value (letters, digits, "-", "_", ".")')
  .max(63);
const absolutePath = z.string().regex(/^\//, 'expected an absolute path');

const toleration = z.strictObject({
  key: labelKey.optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: labelValue.optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: nonNegativeInt.optional(),
});

/**
 * The shared storage that holds the workspace (and ModelLink, data, weights): mounted in every pod at
 * `mountPath`, which must be the path the submitting worker sees it at too (checkpoints are found there).
 */
const volume = z.union([
  z.strictObject({ hostPath: absolutePath, mountPath: absolutePath.optional(), readOnly: z.boolean().optional() }),
  z.strictObject({ claim: dnsLabel, mountPath: absolutePath, readOnly: z.boolean().optional() }),
]);

export const kubernetesSchema = z.strictObject({
  namespace: dnsLabel.default('default'),
  /** The image every rank runs: ModelLink (or MindSpeed-LLM), CANN and torch_npu installed; the workspace comes from `volumes`. */
  image: nonEmpty,
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  /** pods: an indexed Job and a headless Service (Kubernetes' own gang scheduling where served); volcano: a Volcano Job; ascendjob: MindCluster's AscendJob. */
  flavour: z.enum(['pods', 'volcano', 'ascendjob']).default('pods'),
  /** The device each pod asks for, and how many (default: cluster.devicesPerNode), as Ascend's device plugin advertises them. */
  devices: z
    .strictObject({
      resource: resourceName.default('huawei.com/Ascend910'),
      perNode: positiveInt.optional(),
    })
    .default({ resource: 'huawei.com/Ascend910' }),
  /** More resources per pod, as the API takes them: { cpu: "16", memory: "256Gi" } (requests = limits). */
  resources: z.record(resourceName, z.union([z.string().min(1), positiveInt])).optional(),
  nodeSelector: z.record(labelKey, labelValue).optional(),
  tolerations: z.array(toleration).optional(),
  serviceAccount: dnsLabel.optional(),
  priorityClass: dnsSubdomain.optional(),
  /** The Volcano queue (volcano and ascendjob flavours). */
  queue: dnsSubdomain.optional(),
  /** pods flavour: auto uses Kubernetes' PodGroup (scheduling.k8s.io/v1beta1) when the cluster serves it; off never does. */
  gangScheduling: z.enum(['auto', 'off']).default('auto'),
  /** AscendJob's own fault handling (MindCluster): off leaves recovery to linkflow's attempts. */
  faultScheduling: z.enum(['off', 'grace', 'force']).default('off'),
  faultRetryTimes: positiveInt.optional(),
  volumes: z.array(volume).min(1, 'expected the shared volume that holds the workspace (hostPath or claim)'),
  labels: z.record(labelKey, labelValue).optional(),
  annotations: z.record(labelKey, z.string()).optional(),
  /** More fields of the pod spec (hostNetwork, dnsPolicy, securityContext, …); the fields linkflow sets are refused. */
  pod: z.record(z.string(), z.unknown()).optional(),
});
