// WebSocket frames at the byte level (RFC 6455 5.2), for clients no WebSocket library would be: ones
// that forge pongs, never read, or send malformed frames; and a reader of what the server sends.
import { randomBytes } from 'node:crypto';

/** A client frame: masked unless told otherwise. */
export function clientFrame(opcode: number, payload: Buffer, options: { fin?: boolean; masked?: boolean; rsv?: number } = {}): Buffer {
  const { fin = true, masked = true, rsv = 0 } = options;
  const head = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const maskBit = masked ? 0x80 : 0;
  const extended: number[] = [];
  if (payload.length < 126) head.push(maskBit | payload.length);
  else if (payload.length < 65536) {
    head.push(maskBit | 126);
    extended.push(payload.length >> 8, payload.length & 0xff);
  } else {
    head.push(maskBit | 127);
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(payload.length));
    extended.push(...big);
  }
  if (!masked) return Buffer.concat([Buffer.from([...head, ...extended]), payload]);
  const mask = randomBytes(4);
  return Buffer.concat([Buffer.from([...head, ...extended]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
}

export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** The complete (unmasked) server frames at the start of `bytes`, and the bytes after them. */
export function readServerFrames(bytes: Buffer): { frames: ServerFrame[]; rest: Buffer } {
  const frames: ServerFrame[] = [];
  let pending = bytes;
  while (pending.length >= 2) {
    let length = pending[1]! & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (pending.length < 4) break;
      length = pending.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (pending.length < 10) break;
      length = Number(pending.readBigUInt64BE(2));
      offset = 10;
    }
    if (pending.length < offset + length) break;
    frames.push({ opcode: pending[0]! & 0x0f, payload: pending.subarray(offset, offset + length) });
    pending = pending.subarray(offset + length);
  }
  return { frames, rest: pending };
}
