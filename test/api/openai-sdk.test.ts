// The official `openai` npm client against a real swserve: what SDK users do every day.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { createReferenceModel } from '../helpers/reference-forward.js';
import { logSoftmax } from '../helpers/reference-perplexity.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

// float32 engine vs float64 reference.
const LOGPROB_TOLERANCE = 1e-4;


let server: TestServer;
let client: OpenAI;

before(async () => {
  server = await startTestServer();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(() => server.close());

describe('openai SDK: completions', () => {
  it('creates a plain completion', async () => {
    const c = await client.completions.create({ model: server.modelId, prompt: 'Summer is hot. Winter is', max_tokens: 6, temperature: 0 });
    assert.equal(c.object, 'text_completion');
    assert.equal(c.choices.length, 1);
    assert.equal(c.choices[0]!.finish_reason, 'length');
    assert.equal(c.usage?.completion_tokens, 6);
    assert.equal(c.usage?.prompt_tokens, 25);
    assert.equal(c.usage?.total_tokens, 31);
  });

  it('streams deltas that add up to the non-streamed text, with usage last', async () => {
    const plain = await client.completions.create({ model: server.modelId, prompt: 'Winter', max_tokens: 12, temperature: 0 });
    const stream = await client.completions.create({ model: server.modelId, prompt: 'Winter', max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const finishReasons: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      if (chunk.choices.length === 0) usage = chunk.usage;
      for (const choice of chunk.choices) {
        text += choice.text;
        finishReasons.push(choice.finish_reason);
      }
    }
    assert.equal(text, plain.choices[0]!.text);
    assert.equal(finishReasons[finishReasons.length - 1], 'length');
    assert.ok(finishReasons.slice(0, -1).every((f) => f === null));
    assert.deepEqual(usage, plain.usage);
  });

  it('returns n=2 choices with their indices and different samples', async () => {
    const c = await client.completions.create({ model: server.modelId, prompt: 'Winter', max_tokens: 16, n: 2, temperature: 1, seed: 5 });
    assert.deepEqual(c.choices.map((x) => x.index), [0, 1]);
    assert.notEqual(c.choices[0]!.text, c.choices[1]!.text);
    assert.equal(c.usage?.completion_tokens, 32);
  });

  it('stops at a stop sequence and leaves it out', async () => {
    const full = await client.completions.create({ model: server.modelId, prompt: 'Winter', max_tokens: 12, temperature: 0 });
    const stop = full.choices[0]!.text.slice(4, 6);
    const c = await client.completions.create({ model: server.modelId, prompt: 'Winter', max_tokens: 12, temperature: 0, stop: [stop, 'never-matches'] });
    assert.equal(c.choices[0]!.text, full.choices[0]!.text.slice(0, full.choices[0]!.text.indexOf(stop)));
    assert.equal(c.choices[0]!.finish_reason, 'stop');
  });

  it('echoes the prompt with logprobs in the four-array layout', async () => {
    const c = await client.completions.create({ model: server.modelId, prompt: 'Hi there', max_tokens: 3, temperature: 0, echo: true, logprobs: 2 });
    const choice = c.choices[0]!;
    assert.ok(choice.text.startsWith('Hi there'));
    const lp = choice.logprobs!;
    // BOS + 8 prompt bytes + 3 generated tokens.
    assert.equal(lp.tokens!.length, 12);
    assert.equal(lp.token_logprobs![0], null);
    assert.equal(lp.top_logprobs![0], null);
    for (let i = 1; i < 12; i++) {
      const top = lp.top_logprobs![i]!;
      assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 3);
      assert.ok(lp.token_logprobs![i]! <= 0);
    }
    // The prompt's logprobs and its best alternative, as the plain reference forward pass computes
    // them from the checkpoint (BOS, then the prompt's bytes). (Byte tokens that are not UTF-8 alone
    // share the text "\uFFFD", so the second best may share the best's key and not be listed.)
    const ids = [server.checkpoint.bosId, ...Buffer.from('Hi there')];
    const { logits } = createReferenceModel(server.checkpoint).forward(ids);
    for (let i = 1; i < ids.length; i++) {
      const reference = logSoftmax(logits[i - 1]!);
      assert.ok(Math.abs(lp.token_logprobs![i]! - reference[ids[i]!]!) < LOGPROB_TOLERANCE, `prompt token ${i}`);
      const best = Math.max(...reference);
      const served = Math.max(...Object.values(lp.top_logprobs![i]!));
      assert.ok(Math.abs(served - best) < LOGPROB_TOLERANCE, `best alternative of prompt token ${i}: ${served} vs ${best}`);
    }
    assert.deepEqual(lp.text_offset, lp.tokens!.map((_, i) => lp.tokens!.slice(0, i).join('').length));
  });

  it('reproduces a seeded sample', async () => {
    const a = await client.completions.create({ model: server.modelId, prompt: 'Winter', max_tokens: 16, temperature: 1, seed: 42 });
    const b = await client.completions.create({ model: server.modelId, prompt: 'Winter', max_tokens: 16, temperature: 1, seed: 42 });
    const c = await client.completions.create({ model: server.modelId, prompt: 'Winter', max_tokens: 16, temperature: 1, seed: 43 });
    assert.equal(a.choices[0]!.text, b.choices[0]!.text);
    assert.notEqual(a.choices[0]!.text, c.choices[0]!.text);
  });

  it('switches super weights through extra_body', async () => {
    const on = await client.completions.create({ model: server.modelId, prompt: 'Summer is hot. Winter is', max_tokens: 8, temperature: 0, logprobs: 0 });
    const off = await client.completions.create({ model: server.modelId, prompt: 'Summer is hot. Winter is', max_tokens: 8, temperature: 0, logprobs: 0, ...{ super_weights: 'off' } } as OpenAI.CompletionCreateParamsNonStreaming);
    const applied = (off as unknown as { super_weights: { mode: string; plan: string; weights: { id: string; effective_value: number }[] } }).super_weights;
    assert.equal(applied.mode, 'ablated');
    assert.equal(applied.plan, 'zeroed');
    assert.deepEqual(applied.weights.map((w) => [w.id, w.effective_value]), [['1:7:33', 0]]);
    assert.notDeepEqual(on.choices[0]!.logprobs!.token_logprobs, off.choices[0]!.logprobs!.token_logprobs);
  });
});

describe('openai SDK: chat and models', () => {
  it('creates a chat completion from the model template', async () => {
    const c = await client.chat.completions.create({ model: server.modelId, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 5, temperature: 0 });
    assert.equal(c.object, 'chat.completion');
    assert.equal(c.choices[0]!.message.role, 'assistant');
    assert.equal(typeof c.choices[0]!.message.content, 'string');
    // "user: Hello\nassistant:" plus nothing else: the template adds no BOS text, so the count is exact.
    assert.equal(c.usage?.prompt_tokens, 'user: Hello\nassistant:'.length);
  });

  it('streams a chat completion: role first, then content, finish last', async () => {
    const plain = await client.chat.completions.create({ model: server.modelId, messages: [{ role: 'user', content: 'Hello' }], max_completion_tokens: 8, temperature: 0 });
    const stream = await client.chat.completions.create({ model: server.modelId, messages: [{ role: 'user', content: 'Hello' }], max_completion_tokens: 8, temperature: 0, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0]!.object, 'chat.completion.chunk');
    assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), plain.choices[0]!.message.content);
    assert.equal(chunks[chunks.length - 1]!.choices[0]!.finish_reason, 'length');
  });

  it('returns chat logprobs with top alternatives', async () => {
    const c = await client.chat.completions.create({ model: server.modelId, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 2 });
    const content = c.choices[0]!.logprobs!.content!;
    assert.equal(content.length, 3);
    for (const entry of content) {
      assert.equal(entry.top_logprobs.length, 2);
      assert.ok(entry.top_logprobs[0]!.logprob >= entry.logprob - 1e-6);
    }
  });

  it('lists the model with meta facts', async () => {
    const page = await client.models.list();
    assert.equal(page.data.length, 1);
    const model = page.data[0]! as OpenAI.Model & { meta: { context_length: number; device: string; super_weights: { id: string }[] } };
    assert.equal(model.id, server.modelId);
    assert.equal(model.meta.context_length, 512);
    assert.equal(model.meta.device, 'cpu');
    assert.deepEqual(model.meta.super_weights.map((s) => s.id), ['1:7:33']);
  });

  it('surfaces a 400 as the SDK error with the param', async () => {
    await assert.rejects(client.completions.create({ model: server.modelId, prompt: 'x', temperature: 3 }), (err: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(err.status, 400);
      assert.equal((err.error as { param?: string }).param ?? err.param, 'temperature');
      return true;
    });
  });
});

describe('openai SDK: responses, models.retrieve, refusals', () => {
  it('creates a response whose output_text is the chat completion of the same input', async () => {
    const chat = await client.chat.completions.create({ model: server.modelId, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }], max_tokens: 6, temperature: 0 });
    const r = await client.responses.create({ model: server.modelId, instructions: 'Be brief.', input: 'Hello', max_output_tokens: 6, temperature: 0 });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'incomplete');
    assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
    assert.equal(r.output_text, chat.choices[0]!.message.content);
    assert.deepEqual([r.usage?.input_tokens, r.usage?.output_tokens, r.usage?.total_tokens], [chat.usage?.prompt_tokens, 6, chat.usage!.prompt_tokens + 6]);
    const applied = (r as unknown as { super_weights: { plan: string } }).super_weights;
    assert.equal(applied.plan, 'original');
  });

  it('streams a response: the Responses API events in order, deltas adding up to the text', async () => {
    const plain = await client.responses.create({ model: server.modelId, input: [{ role: 'user', content: 'Hello' }], max_output_tokens: 8, temperature: 0 });
    const stream = await client.responses.create({ model: server.modelId, input: [{ role: 'user', content: 'Hello' }], max_output_tokens: 8, temperature: 0, stream: true });
    const types: string[] = [];
    let text = '';
    let last: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
      if (event.type === 'response.incomplete' || event.type === 'response.completed') last = event.response;
    }
    const head = ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added'];
    const tail = ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.incomplete'];
    assert.deepEqual(types.slice(0, 4), head);
    assert.deepEqual(types.slice(-4), tail);
    assert.ok(types.slice(4, -4).every((t) => t === 'response.output_text.delta') && types.length > 8);
    assert.equal(text, plain.output_text);
    assert.equal(last?.usage?.output_tokens, 8);
  });

  it('switches super weights on a response through extra fields', async () => {
    const r = await client.responses.create({ model: server.modelId, input: 'Hello', max_output_tokens: 2, ...{ super_weights: { scale: 0, restore_activation: true } } } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
    const applied = (r as unknown as { super_weights: { plan: string; scale: number } }).super_weights;
    assert.deepEqual([applied.plan, applied.scale], ['zeroed_sa_restored', 0]);
  });

  it('retrieves the served model, and 404s another as NotFoundError', async () => {
    const model = await client.models.retrieve(server.modelId);
    assert.equal(model.id, server.modelId);
    await assert.rejects(client.models.retrieve('gpt-4o'), (err: unknown) => err instanceof OpenAI.NotFoundError && err.status === 404);
  });

  it('refuses tool calls as a BadRequestError naming the field', async () => {
    const tools: OpenAI.Chat.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
    await assert.rejects(client.chat.completions.create({ model: server.modelId, messages: [{ role: 'user', content: 'Hi' }], tools, tool_choice: 'required' }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError);
      assert.equal(err.code, 'unsupported_parameter');
      assert.equal(err.param, 'tool_choice');
      return true;
    });
    await assert.rejects(client.responses.create({ model: server.modelId, input: 'Hi', text: { format: { type: 'json_object' } } }), (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'text.format');
  });
});
