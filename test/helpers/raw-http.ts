// Raw bytes to a server over TCP, for requests no HTTP client library would send (malformed targets,
// bad framing). Resolves with everything the server wrote before it closed or the wait ran out.
import net from 'node:net';

// Long enough for a loaded machine to answer; a server that keeps the socket open past it is reported as such.
const RAW_RESPONSE_WAIT_MS = 5000;

export interface RawResponse {
  text: string;
  /** The status code of the first response line, if there is one. */
  status: number | undefined;
  /** The body after the headers, parsed as JSON when it is JSON. */
  json: unknown;
  /** The server closed the connection (rather than the wait running out). */
  closed: boolean;
}

export interface RawRequestOptions {
  /** How long to wait for the server to answer and close. */
  waitMs?: number;
  /** Half-close the connection after the bytes (the client has nothing more to send: a cut body). */
  end?: boolean;
}

export function rawRequest(url: string, bytes: string | Buffer, options: RawRequestOptions = {}): Promise<RawResponse> {
  const { waitMs = RAW_RESPONSE_WAIT_MS, end = false } = options;
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let closed = false;
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('utf8');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
      const body = text.split('\r\n\r\n').slice(1).join('\r\n\r\n');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ text, status: status === undefined ? undefined : Number(status), json, closed });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('end', () => {
      closed = true;
      finish();
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (end) socket.end(bytes);
    else socket.write(bytes);
  });
}
