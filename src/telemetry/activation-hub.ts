// Fans the activation taps of every engine step out to WebSocket clients. It follows each sequence
// from `accepted` (who asked, which switch plan) to `finish`/`error`, turns each `token` event's
// ActivationFrame into a step frame for the clients whose subscription wants it, and hands frames to
// each client's bounded outbox. Nothing here waits on a client, so the engine never does either.
import type { ActivationFrame, EngineUpdate, SequenceEvent } from '../engine/protocol.js';
import type { SuperWeightCoordinate } from '../model/switch-plan.js';
import { ClientOutbox, type FrameSocket } from './client-outbox.js';
import { MAX_FRAME_INPUT_TOKENS, stepFrame, wireSwitch, type ControlFrame, type EndFrame, type SequenceIdentity, type TokenRef } from './stream-frames.js';
import { wantsRequest, wantsStep, type SubscriptionFilter } from './subscription.js';

export interface HubOptions {
  /** Frames each client may have waiting before its oldest are dropped. */
  clientBufferFrames: number;
  /** Bytes each client may have waiting (its ring and its socket together) before its oldest frames are dropped. */
  clientBufferBytes: number;
  /** The model's known super weights, against which each switch plan is labelled. */
  knownSuperWeights: readonly SuperWeightCoordinate[];
  /** Told the number of connected clients whenever it changes. */
  onClients?: (count: number) => void;
  /** Told about every frame dropped for a slow client. */
  onDropped?: (count: number) => void;
  /** Told whenever it changes whether any client wants decode steps' frames (the engine builds them only then). */
  onDecodeDemand?: (wanted: boolean) => void;
}

export interface HubClient {
  filter: SubscriptionFilter;
  readonly outbox: ClientOutbox;
}

interface Track extends SequenceIdentity {
  /** The prompt (its first MAX_FRAME_INPUT_TOKENS) until the prefill frame is built, then the last sampled token. */
  input: TokenRef[];
  /** Prompt tokens left out of `input`. */
  inputOmitted: number;
}

export class ActivationHub {
  private readonly clients = new Set<HubClient>();
  private readonly tracks = new Map<string, Track>();
  private decodeDemand = false;

  constructor(private readonly options: HubOptions) {}

  get clientCount(): number {
    return this.clients.size;
  }

  addClient(socket: FrameSocket, filter: SubscriptionFilter): HubClient {
    const limits = { frames: this.options.clientBufferFrames, bytes: this.options.clientBufferBytes };
    const client: HubClient = { filter, outbox: new ClientOutbox(socket, limits, (n) => this.options.onDropped?.(n)) };
    this.clients.add(client);
    this.options.onClients?.(this.clients.size);
    this.updateDecodeDemand();
    return client;
  }

  removeClient(client: HubClient): void {
    if (this.clients.delete(client)) this.options.onClients?.(this.clients.size);
    this.updateDecodeDemand();
  }

  /** Replaces a client's subscription. */
  subscribe(client: HubClient, filter: SubscriptionFilter): void {
    client.filter = filter;
    this.updateDecodeDemand();
  }

  private updateDecodeDemand(): void {
    const wanted = [...this.clients].some((c) => c.filter.spec.decode_every > 0);
    if (wanted !== this.decodeDemand) {
      this.decodeDemand = wanted;
      this.options.onDecodeDemand?.(wanted);
    }
  }

  send(client: HubClient, frame: ControlFrame): void {
    client.outbox.push(JSON.stringify(frame));
  }

  handleUpdate(update: EngineUpdate): void {
    for (const event of update.events) this.handleEvent(event);
  }

  private handleEvent(event: SequenceEvent): void {
    if (event.type === 'accepted') {
      const tags = event.tags;
      // Without tags (a caller outside the HTTP API) the sequence id stands in for the request id.
      const switchState = wireSwitch(event.switchPlan, this.options.knownSuperWeights);
      this.tracks.set(event.id, { requestId: tags?.requestId ?? event.id, choice: tags?.choice ?? 0, switch: switchState, input: [], inputOmitted: 0 });
      return;
    }
    const track = this.tracks.get(event.id);
    if (!track) return;
    if (event.type === 'prompt') {
      const kept = event.promptIds.slice(0, MAX_FRAME_INPUT_TOKENS);
      track.input = kept.map((id, i) => ({ id, text: event.promptTokens[i] ?? '' }));
      track.inputOmitted = event.promptIds.length - kept.length;
    } else if (event.type === 'token') {
      const token: TokenRef = { id: event.tokenId, text: event.token };
      if (event.frame) this.publishStep(track, event.frame, token);
      track.input = [token];
      track.inputOmitted = 0;
    } else {
      this.tracks.delete(event.id);
      const end: EndFrame =
        event.type === 'finish'
          ? { type: 'end', request_id: track.requestId, choice: track.choice, finish_reason: event.reason, prompt_tokens: event.promptTokens, completion_tokens: event.completionTokens }
          : { type: 'end', request_id: track.requestId, choice: track.choice, finish_reason: 'error', prompt_tokens: 0, completion_tokens: 0, error: event.message };
      this.publish(track, () => JSON.stringify(end));
    }
  }

  private publishStep(track: Track, frame: ActivationFrame, token: TokenRef): void {
    // Serialized once per distinct layer subset, however many clients share it.
    const byLayers = new Map<string, string>();
    for (const client of this.clients) {
      const { filter } = client;
      if (!wantsRequest(filter, track.requestId, track.switch) || !wantsStep(filter, frame.phase, frame.step)) continue;
      const key = filter.spec.layers?.join(',') ?? '*';
      let text = byLayers.get(key);
      if (text === undefined) {
        text = JSON.stringify(stepFrame(track, frame, { tokens: track.input, omitted: track.inputOmitted }, token, filter.layers));
        byLayers.set(key, text);
      }
      client.outbox.push(text);
    }
  }

  private publish(track: Track, serialize: () => string): void {
    let text: string | undefined;
    for (const client of this.clients) {
      if (wantsRequest(client.filter, track.requestId, track.switch)) client.outbox.push((text ??= serialize()));
    }
  }
}
