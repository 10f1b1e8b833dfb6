// Where the model runs: the device a user asks for ("cpu", "cuda", "cuda:N"), parsed once for the
// server, the CLI and the engine.

export type DeviceRequest = { kind: 'cpu' } | { kind: 'cuda'; deviceId: number };

/** "cpu", "cuda" or "cuda:N". */
export function parseDevice(value: string): DeviceRequest {
  if (value === 'cpu') return { kind: 'cpu' };
  const match = /^cuda(?::(\d+))?$/.exec(value);
  if (!match) throw new Error(`--device ${value}: expected cpu, cuda or cuda:N`);
  return { kind: 'cuda', deviceId: Number(match[1] ?? 0) };
}
