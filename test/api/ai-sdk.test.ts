// The Vercel AI SDK against a real swserve, through both providers: @ai-sdk/openai-compatible (chat
// and completion models) and @ai-sdk/openai, whose default model speaks the Responses API.
// generateText and streamText, errors as the SDK's APICallError, and tool calls refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, generateText, streamText, tool, type LanguageModel } from 'ai';
import { z } from 'zod';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

let server: TestServer;
const MAX_TOKENS = 6;

before(async () => {
  server = await startTestServer();
});
after(() => server.close());

/** generateText, then streamText on the same model: one text, the same tokens counted. */
async function generatesAndStreams(model: LanguageModel): Promise<string> {
  const settings = { model, prompt: 'Summer is hot. Winter is', maxOutputTokens: MAX_TOKENS, temperature: 0, maxRetries: 0 };
  const generated = await generateText(settings);
  assert.ok(generated.text.length > 0);
  assert.equal(generated.usage.outputTokens, MAX_TOKENS);
  assert.equal(generated.finishReason, 'length');
  const stream = streamText({ ...settings, onError: () => {} });
  let streamed = '';
  for await (const delta of stream.textStream) streamed += delta;
  assert.equal(streamed, generated.text);
  assert.equal((await stream.usage).outputTokens, MAX_TOKENS);
  return generated.text;
}

/** The call fails as an APICallError with this status whose body names the field. */
async function refusedWith(call: Promise<unknown>, status: number, param: string): Promise<void> {
  await assert.rejects(call, (err: unknown) => {
    assert.ok(APICallError.isInstance(err), String(err));
    assert.equal(err.statusCode, status);
    assert.equal((JSON.parse(err.responseBody ?? '{}') as { error: { param: string } }).error.param, param);
    return true;
  });
}

const weather = tool({ description: 'The weather', inputSchema: z.object({ city: z.string() }), execute: async () => 'sunny' });

describe('AI SDK, @ai-sdk/openai-compatible', () => {
  it('chat model: generateText and streamText', async () => {
    const provider = createOpenAICompatible({ name: 'swserve', baseURL: `${server.url}/v1`, apiKey: 'unused', includeUsage: true });
    await generatesAndStreams(provider.chatModel(server.modelId));
  });

  it('completion model: generateText and streamText', async () => {
    const provider = createOpenAICompatible({ name: 'swserve', baseURL: `${server.url}/v1`, apiKey: 'unused', includeUsage: true });
    await generatesAndStreams(provider.completionModel(server.modelId));
  });

  it('refuses a required tool call, and surfaces an unknown model, as APICallError', async () => {
    const provider = createOpenAICompatible({ name: 'swserve', baseURL: `${server.url}/v1`, apiKey: 'unused' });
    await refusedWith(generateText({ model: provider.chatModel(server.modelId), prompt: 'Weather?', tools: { weather }, toolChoice: 'required', maxRetries: 0 }), 400, 'tool_choice');
    await refusedWith(generateText({ model: provider.chatModel('gpt-4o'), prompt: 'Hi', maxRetries: 0 }), 404, 'model');
  });
});

describe('AI SDK, @ai-sdk/openai', () => {
  it('the default model (Responses API), chat and completion: generateText and streamText, one text', async () => {
    const openai = createOpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' });
    const viaResponses = await generatesAndStreams(openai(server.modelId));
    const viaChat = await generatesAndStreams(openai.chat(server.modelId));
    assert.equal(viaResponses, viaChat);
    await generatesAndStreams(openai.completion(server.modelId));
  });

  // The SDK sends tools with tool_choice "auto", the field that asks for the call.
  it('refuses tools on the Responses API as APICallError naming the field', async () => {
    const openai = createOpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' });
    await refusedWith(generateText({ model: openai(server.modelId), prompt: 'Weather?', tools: { weather }, maxRetries: 0 }), 400, 'tool_choice');
  });
});
