/** The test cluster's DNS (testkit/kubernetes/dns.ts): CoreDNS's names for services, headless-service hostnames and pods. */
import { describe, expect, it } from 'vitest';
import { decodeQuery, encodeAnswer, namespaceOf, resolve, TYPE_A, type NamespaceView } from '../testkit/kubernetes/dns.ts';

const D = 'cluster.local';
const view: NamespaceView = {
  services: [
    { name: 'train', clusterIP: 'None' },
    { name: 'api', clusterIP: '10.9.200.7' },
    { name: 'early', clusterIP: 'None', publishNotReadyAddresses: true },
  ],
  endpoints: [
    { service: 'train', ip: '10.9.1.4', hostname: 'train-0', ready: true },
    { service: 'train', ip: '10.9.2.5', hostname: 'train-1', ready: false },
    { service: 'early', ip: '10.9.2.6', hostname: 'early-0', ready: true },
  ],
};

function query(name: string, type = TYPE_A, id = 0x1234): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, type, 0, 1])]);
}

describe('the test cluster DNS', () => {
  it('finds the namespace of service and pod names, and nothing outside the cluster domain', () => {
    expect(namespaceOf('train-0.train.smoke.svc.cluster.local', D)).toBe('smoke');
    expect(namespaceOf('train.smoke.svc.cluster.local', D)).toBe('smoke');
    expect(namespaceOf('10-9-1-4.smoke.pod.cluster.local', D)).toBe('smoke');
    expect(namespaceOf('train-0.train', D)).toBeUndefined();
    expect(namespaceOf('pypi.org', D)).toBeUndefined();
    expect(namespaceOf('a.b.c.d.smoke.svc.cluster.local', D)).toBeUndefined();
  });

  it('answers ready endpoints by hostname, a headless service with its ready endpoints, a ClusterIP service with its IP', () => {
    expect(resolve('train-0.train.smoke.svc.cluster.local', D, view)).toEqual(['10.9.1.4']);
    expect(resolve('train-1.train.smoke.svc.cluster.local', D, view)).toBeUndefined();
    expect(resolve('train.smoke.svc.cluster.local', D, view)).toEqual(['10.9.1.4']);
    expect(resolve('api.smoke.svc.cluster.local', D, view)).toEqual(['10.9.200.7']);
    expect(resolve('early-0.early.smoke.svc.cluster.local', D, view)).toEqual(['10.9.2.6']);
    expect(resolve('missing.smoke.svc.cluster.local', D, view)).toBeUndefined();
    expect(resolve('10-9-1-4.smoke.pod.cluster.local', D, view)).toEqual(['10.9.1.4']);
  });

  it('encodes A answers, NODATA for other types of a known name, NXDOMAIN for an unknown one', () => {
    const q = decodeQuery(query('Train-0.train.smoke.svc.cluster.local'));
    expect(q?.name).toBe('train-0.train.smoke.svc.cluster.local');
    const a = encodeAnswer(q!, ['10.9.1.4']);
    expect(a.readUInt16BE(0)).toBe(0x1234);
    expect(a.readUInt16BE(2) & 0x800f).toBe(0x8000); // a response, NOERROR
    expect(a.readUInt16BE(6)).toBe(1);
    expect([...a.subarray(a.length - 4)]).toEqual([10, 9, 1, 4]);
    const aaaa = encodeAnswer(decodeQuery(query('train-0.train.smoke.svc.cluster.local', 28))!, ['10.9.1.4']);
    expect([aaaa.readUInt16BE(2) & 0xf, aaaa.readUInt16BE(6)]).toEqual([0, 0]);
    const nx = encodeAnswer(decodeQuery(query('nope.smoke.svc.cluster.local'))!, undefined);
    expect([nx.readUInt16BE(2) & 0xf, nx.readUInt16BE(6)]).toEqual([3, 0]);
    expect(decodeQuery(Buffer.from([1, 2, 3]))).toBeUndefined();
  });
});
