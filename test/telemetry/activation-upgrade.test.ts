// Upgrade requests a WebSocket client would never send: the server answers each with an OpenAI error
// envelope and keeps serving (a request target `new URL()` cannot parse used to end the process).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

let server: TestServer;
before(async () => {
  server = await startTestServer({ config: { apiKey: 'secret-key' } });
});
after(async () => server?.close());

const upgrade = (target: string): string =>
  `GET ${target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

/** An upgrade of the right target with the right key, and `change` applied to the request lines. */
function handshake(change: (lines: string[]) => string[]): string {
  const lines = upgrade('/v1/activations?api_key=secret-key').split('\r\n').filter((l) => l !== '');
  return `${change(lines).join('\r\n')}\r\n\r\n`;
}

describe('malformed WebSocket upgrades', () => {
  const handshakes: { name: string; bytes: string; status: number; code: string }[] = [
    { name: 'no Sec-WebSocket-Key', bytes: handshake((l) => l.filter((x) => !x.startsWith('Sec-WebSocket-Key'))), status: 400, code: 'invalid_request' },
    { name: 'a Sec-WebSocket-Key that is not 16 bytes of base64', bytes: handshake((l) => l.map((x) => (x.startsWith('Sec-WebSocket-Key') ? 'Sec-WebSocket-Key: short' : x))), status: 400, code: 'invalid_request' },
    { name: 'WebSocket version 12', bytes: handshake((l) => l.map((x) => (x.startsWith('Sec-WebSocket-Version') ? 'Sec-WebSocket-Version: 12' : x))), status: 400, code: 'invalid_request' },
    { name: 'a POST upgrade', bytes: handshake((l) => [l[0]!.replace(/^GET/, 'POST'), ...l.slice(1)]), status: 405, code: 'method_not_allowed' },
  ];
  for (const h of handshakes) {
    it(`answers ${h.name} with ${h.status} ${h.code} in the envelope`, async () => {
      const response = await rawRequest(server.url, h.bytes);
      assert.equal(response.status, h.status, response.text);
      assert.equal((response.json as { error?: { code?: string } }).error?.code, h.code);
    });
  }

  for (const target of ['//[', 'http://[', '//[::1', 'http://%zz/v1/activations']) {
    it(`answers ${target} with a 4xx envelope, before the key check, and stays up`, async () => {
      const response = await rawRequest(server.url, upgrade(target));
      assert.ok(response.status !== undefined && response.status >= 400 && response.status < 500, response.text);
      const error = (response.json as { error?: { code?: string; type?: string } }).error;
      assert.equal(error?.type, 'invalid_request_error');
      const health = await fetch(`${server.url}/health`);
      assert.equal(health.status, 200);
    });
  }
});
