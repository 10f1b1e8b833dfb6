import type { DeviceRequest } from '../engine/session.js';

/** "cpu", "cuda" or "cuda:N". */
export function parseDevice(value: string): DeviceRequest {
  if (value === 'cpu') return { kind: 'cpu' };
  const match = /^cuda(?::(\d+))?$/.exec(value);
  if (!match) throw new Error(`--device ${value}: expected cpu, cuda or cuda:N`);
  return { kind: 'cuda', deviceId: Number(match[1] ?? 0) };
}
