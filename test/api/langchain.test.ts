// LangChain JS (@langchain/openai) against a real swserve: ChatOpenAI over chat completions and over
// the Responses API, the OpenAI completion LLM, streaming, and tool binding refused rather than
// answered with no tool calls.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatOpenAI, OpenAI as OpenAILLM } from '@langchain/openai';
import OpenAI from 'openai';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

let server: TestServer;
let settings: { model: string; apiKey: string; configuration: { baseURL: string }; maxRetries: number; temperature: number };

before(async () => {
  server = await startTestServer();
  settings = { model: server.modelId, apiKey: 'unused', configuration: { baseURL: `${server.url}/v1` }, maxRetries: 0, temperature: 0 };
});
after(() => server.close());

describe('LangChain ChatOpenAI', () => {
  it('invokes and streams over chat completions; the chunks add up to the answer', async () => {
    const chat = new ChatOpenAI({ ...settings, maxTokens: 6 });
    const answer = await chat.invoke('Hello');
    assert.equal(typeof answer.content, 'string');
    assert.ok((answer.content as string).length > 0);
    assert.equal(answer.usage_metadata?.output_tokens, 6);
    let streamed = '';
    for await (const chunk of await chat.stream('Hello')) streamed += chunk.content as string;
    assert.equal(streamed, answer.content);
  });

  it('invokes and streams over the Responses API with the same text', async () => {
    const viaChat = await new ChatOpenAI({ ...settings, maxTokens: 6 }).invoke('Hello');
    const responses = new ChatOpenAI({ ...settings, maxTokens: 6, useResponsesApi: true });
    const answer = await responses.invoke('Hello');
    assert.equal(answer.text, viaChat.text);
    let streamed = '';
    for await (const chunk of await responses.stream('Hello')) streamed += chunk.text;
    assert.equal(streamed, viaChat.text);
  });

  it('refuses bound tools with the SDK error naming the field, instead of answering without tool calls', async () => {
    const chat = new ChatOpenAI({ ...settings, maxTokens: 6 }).bindTools([{ type: 'function', function: { name: 'get_weather', description: 'The weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]);
    await assert.rejects(chat.invoke('Weather in Paris?'), (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.code, 'unsupported_parameter');
      assert.equal(err.param, 'tools');
      return true;
    });
  });

  it('surfaces an unknown model as the 404 error', async () => {
    await assert.rejects(new ChatOpenAI({ ...settings, model: 'gpt-4o' }).invoke('Hi'), (err: unknown) => err instanceof OpenAI.NotFoundError && err.status === 404);
  });
});

describe('LangChain OpenAI (completions LLM)', () => {
  it('invokes and streams a completion', async () => {
    const llm = new OpenAILLM({ ...settings, maxTokens: 6 });
    const text = await llm.invoke('Summer is hot. Winter is');
    assert.ok(text.length > 0);
    let streamed = '';
    for await (const chunk of await llm.stream('Summer is hot. Winter is')) streamed += chunk;
    assert.equal(streamed, text);
  });

  it('surfaces a bad field as the 400 error with its param', async () => {
    await assert.rejects(new OpenAILLM({ ...settings, temperature: 5 }).invoke('x'), (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'temperature');
  });
});
