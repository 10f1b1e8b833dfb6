// Settings from the environment: text settings stay text however they look (an API key of digits
// used to stop the server from starting), numeric ones become numbers, and nonsense is refused by name.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envLayer, loadServerConfig } from '../../src/config/server-config.js';

describe('environment settings', () => {
  it('keeps an all-digit API key, model name and host as text', () => {
    const config = loadServerConfig({ env: { SWSERVE_API_KEY: '123456', SWSERVE_SERVED_MODEL_NAME: '7', HOST: '127.0.0.1' }, flags: {} });
    assert.equal(config.apiKey, '123456');
    assert.equal(config.servedModelName, '7');
    assert.equal(config.host, '127.0.0.1');
  });

  it('turns numeric settings into numbers, the new connection bounds included', () => {
    const layer = envLayer({ SWSERVE_MAX_NUM_SEQS: '4', SWSERVE_REQUEST_TIMEOUT_SECONDS: '2.5', SWSERVE_MAX_WRITE_BUFFER_BYTES: '65536', SWSERVE_TELEMETRY_CLIENT_BUFFER_BYTES: '1024' });
    assert.deepEqual(layer, { limits: { maxNumSeqs: 4 }, connections: { requestTimeoutSeconds: 2.5, maxWriteBufferBytes: 65536 }, telemetry: { clientBufferBytes: 1024 } });
    const config = loadServerConfig({ env: { SWSERVE_IDLE_TIMEOUT_SECONDS: '7' }, flags: {} });
    assert.equal(config.connections.idleTimeoutSeconds, 7);
  });

  it('refuses a value of the wrong kind, naming the setting', () => {
    assert.throws(() => loadServerConfig({ env: { SWSERVE_MAX_NUM_SEQS: 'many' }, flags: {} }), /limits\.maxNumSeqs/);
    assert.throws(() => loadServerConfig({ env: { SWSERVE_IDLE_TIMEOUT_SECONDS: '-1' }, flags: {} }), /connections\.idleTimeoutSeconds/);
  });
});
