// One streaming /v1/completions request as `vllm bench serve` sends it (stream, include_usage,
// ignore_eos, token-id prompts), timed per token: TTFT, each inter-token gap, end to end.
export interface CompletionJob {
  prompt: number[];
  maxTokens: number;
  /** Extra body fields (e.g. super_weights). */
  extra?: Record<string, unknown>;
}

export interface RequestRecord {
  promptTokens: number;
  outputTokens: number;
  /** Seconds from send to the first generated token. */
  ttft: number;
  /** Seconds between consecutive tokens. */
  itl: number[];
  /** Seconds from send to [DONE]. */
  e2e: number;
  /** When it was sent, in seconds since the run began. */
  start: number;
  error?: string;
}

/**
 * Sends one request. `logprobs: 0` makes every token its own chunk even when a random model emits
 * bytes that are not yet text; the server computes nothing extra for it (the sampled token's logprob
 * comes with sampling anyway).
 */
export async function streamCompletion(url: string, model: string, job: CompletionJob, runStart: number): Promise<RequestRecord> {
  const sent = performance.now();
  const record: RequestRecord = { promptTokens: job.prompt.length, outputTokens: 0, ttft: 0, itl: [], e2e: 0, start: (sent - runStart) / 1000 };
  try {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model,
        prompt: job.prompt,
        max_tokens: job.maxTokens,
        temperature: 0,
        ignore_eos: true,
        logprobs: 0,
        stream: true,
        stream_options: { include_usage: true },
        ...job.extra,
      }),
    });
    if (!res.ok || !res.body) {
      record.error = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
      return record;
    }
    let last = 0;
    let buffered = '';
    const decoder = new TextDecoder();
    for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(bytes, { stream: true });
      let cut: number;
      while ((cut = buffered.indexOf('\n\n')) >= 0) {
        const event = buffered.slice(0, cut);
        buffered = buffered.slice(cut + 2);
        if (!event.startsWith('data: ')) continue;
        const data = event.slice(6);
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data) as { choices?: { logprobs?: { tokens?: string[] } }[]; usage?: { completion_tokens: number } | null; error?: { message: string } };
        if (chunk.error) record.error = chunk.error.message;
        const tokens = chunk.choices?.[0]?.logprobs?.tokens?.length ?? 0;
        const now = performance.now();
        for (let i = 0; i < tokens; i++) {
          if (record.ttft === 0) record.ttft = (now - sent) / 1000;
          else record.itl.push(i === 0 ? (now - last) / 1000 : 0);
        }
        if (tokens > 0) last = now;
        if (chunk.usage) record.outputTokens = chunk.usage.completion_tokens;
      }
    }
    record.e2e = (performance.now() - sent) / 1000;
  } catch (err) {
    record.error = (err as Error).message;
  }
  return record;
}
