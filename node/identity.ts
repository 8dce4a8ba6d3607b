/** Who this machine is to the other nodes of a pool: its name and the address its peers reach it at. */
import os from 'node:os';

export interface NodeIdentity {
  node: string;
  /** Where the other nodes reach this one (rank 0's address becomes the master address). */
  address: string;
}

/** The first non-internal IPv4 address, else the host name: what peers on a cluster network can reach. */
export function defaultNodeAddress(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return os.hostname();
}
