// Reading a byte range of a file without holding it open or reading the rest.
import fs from 'node:fs';

export function readFileRange(file: string, offset: number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  const fd = fs.openSync(file, 'r');
  try {
    for (let done = 0; done < length; ) {
      const n = fs.readSync(fd, bytes, done, length - done, offset + done);
      if (n === 0) throw new Error(`${file} ends before byte ${offset + length}`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return bytes;
}
