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

describe('malformed WebSocket upgrades', () => {
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
