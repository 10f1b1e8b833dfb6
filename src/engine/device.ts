// Where the model runs: the device a user asks for ("cpu", "cuda", "cuda:N", "webgpu"), parsed once for
// the server, the CLI and the engine.

export type DeviceRequest = { kind: 'cpu' } | { kind: 'cuda'; deviceId: number } | { kind: 'webgpu' };

/** The choices, as flags and config describe them. */
export const DEVICE_CHOICES = 'cpu|cuda[:N]|webgpu';

/** "cpu", "cuda", "cuda:N" or "webgpu". */
export function parseDevice(value: string): DeviceRequest {
  if (value === 'cpu') return { kind: 'cpu' };
  if (value === 'webgpu') return { kind: 'webgpu' };
  const match = /^cuda(?::(\d+))?$/.exec(value);
  if (!match) throw new Error(`--device ${value}: expected cpu, cuda, cuda:N or webgpu`);
  return { kind: 'cuda', deviceId: Number(match[1] ?? 0) };
}
