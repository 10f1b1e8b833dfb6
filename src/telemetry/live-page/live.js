// The live page: subscribes to /v1/activations (prefill frames and end frames only) and redraws two
// canvases and a table as requests arrive. Plain browser JavaScript, served as is.
const LATEST_REQUESTS = 8;
const RECONNECT_MS = 2000;
const COLORS = { original: '#4ea1ff', ablated: '#ff5c5c', scaled: '#f2b84b' };
const MUTED = '#7d8793';

const requests = []; // newest first: { key, requestId, choice, mode, prompt, layers, supers, end }
const latestByMode = new Map(); // mode -> latest prefill super activations
const statusEl = document.getElementById('status');

function connect() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams({ decode_every: '0' });
  for (const key of ['api_key', 'request_ids', 'modes', 'layers']) if (params.get(key)) query.set(key, params.get(key));
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/v1/activations?${query}`);
  ws.onopen = () => setStatus('connected', 'connected');
  ws.onclose = () => {
    setStatus('disconnected', `disconnected; retrying in ${RECONNECT_MS / 1000} s`);
    setTimeout(connect, RECONNECT_MS);
  };
  ws.onmessage = (message) => onFrame(JSON.parse(message.data));
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function onFrame(frame) {
  if (frame.type === 'step' && frame.phase === 'prefill') {
    const request = {
      key: `${frame.request_id}/${frame.choice}`,
      requestId: frame.request_id,
      choice: frame.choice,
      mode: frame.switch.mode,
      prompt: frame.input_tokens.map((t) => t.text).join(''),
      layers: frame.layers,
      supers: frame.super_activations,
      end: null,
    };
    requests.unshift(request);
    requests.length = Math.min(requests.length, LATEST_REQUESTS);
    latestByMode.set(request.mode, request);
  } else if (frame.type === 'end') {
    const request = requests.find((r) => r.key === `${frame.request_id}/${frame.choice}`);
    if (request) request.end = frame;
  } else if (frame.type === 'dropped') {
    setStatus('connected', `connected; ${frame.total} frames dropped (slow page)`);
  } else {
    return;
  }
  draw();
}

function draw() {
  drawLayers(document.getElementById('layers'));
  drawSupers(document.getElementById('supers'));
  drawTable();
  document.body.dataset.requests = String(requests.length);
}

/** A canvas sized to its CSS box at device resolution, cleared. */
function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const { width, height } = canvas.getBoundingClientRect();
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  ctx.font = '11px system-ui, sans-serif';
  return { ctx, width, height };
}

function drawLayers(canvas) {
  const { ctx, width, height } = prepare(canvas);
  const shown = [...requests].reverse();
  if (shown.length === 0) return placeholder(ctx, width, height);
  const numLayers = Math.max(...shown.map((r) => r.layers.length));
  const top = Math.max(1, ...shown.flatMap((r) => r.layers.map((l) => Math.abs(l.output_max))));
  const logTop = Math.log10(top * 1.5);
  const logBottom = Math.min(-1, Math.floor(Math.log10(Math.max(1e-3, Math.min(...shown.flatMap((r) => r.layers.map((l) => Math.abs(l.output_max) || 1)))))));
  const plot = { left: 44, right: width - 8, top: 8, bottom: height - 22 };
  const y = (v) => plot.bottom - ((Math.log10(Math.max(Math.abs(v), 10 ** logBottom)) - logBottom) / (logTop - logBottom)) * (plot.bottom - plot.top);
  ctx.strokeStyle = '#242c35';
  ctx.fillStyle = MUTED;
  for (let e = logBottom; e <= Math.floor(logTop); e++) {
    ctx.beginPath();
    ctx.moveTo(plot.left, y(10 ** e));
    ctx.lineTo(plot.right, y(10 ** e));
    ctx.stroke();
    ctx.fillText(`1e${e}`, 4, y(10 ** e) + 4);
  }
  const group = (plot.right - plot.left) / numLayers;
  const bar = Math.max(1, (group * 0.8) / shown.length);
  shown.forEach((request, i) => {
    ctx.fillStyle = COLORS[request.mode] ?? MUTED;
    ctx.globalAlpha = 0.35 + (0.65 * (i + 1)) / shown.length;
    for (const l of request.layers) {
      const x = plot.left + l.layer * group + group * 0.1 + i * bar;
      ctx.fillRect(x, y(l.output_max), Math.max(1, bar - 1), plot.bottom - y(l.output_max));
    }
  });
  ctx.globalAlpha = 1;
  ctx.fillStyle = MUTED;
  const labelEvery = Math.ceil(numLayers / 16);
  for (let l = 0; l < numLayers; l += labelEvery) ctx.fillText(String(l), plot.left + l * group + group * 0.4, height - 6);
}

function drawSupers(canvas) {
  const { ctx, width, height } = prepare(canvas);
  const ids = [...new Set([...latestByMode.values()].flatMap((r) => r.supers.map((s) => s.id)))];
  if (ids.length === 0) return placeholder(ctx, width, height);
  const modes = ['original', 'ablated', 'scaled'].filter((m) => latestByMode.has(m));
  const value = (mode, id) => latestByMode.get(mode)?.supers.find((s) => s.id === id)?.value ?? 0;
  const values = ids.flatMap((id) => modes.map((m) => value(m, id)));
  const top = Math.max(0, ...values);
  const bottom = Math.min(0, ...values);
  const plot = { left: 8, right: width - 8, top: 22, bottom: height - 36 };
  // The zero line splits the height in proportion to the largest positive and negative values.
  const scale = (plot.bottom - plot.top) / Math.max(1e-6, top - bottom);
  const zero = plot.top + top * scale;
  ctx.strokeStyle = MUTED;
  ctx.beginPath();
  ctx.moveTo(plot.left, zero);
  ctx.lineTo(plot.right, zero);
  ctx.stroke();
  const group = (plot.right - plot.left) / ids.length;
  const bar = (group * 0.7) / modes.length;
  ids.forEach((id, g) => {
    modes.forEach((mode, m) => {
      const v = value(mode, id);
      const x = plot.left + g * group + group * 0.15 + m * bar;
      ctx.fillStyle = COLORS[mode];
      ctx.fillRect(x, Math.min(zero, zero - v * scale), bar - 2, Math.max(1, Math.abs(v * scale)));
      ctx.fillStyle = '#d8dee6';
      ctx.fillText(v.toFixed(v === 0 || Math.abs(v) >= 100 ? 0 : 2), x, v >= 0 ? zero - v * scale - 4 : zero - v * scale + 12);
    });
    ctx.fillStyle = MUTED;
    ctx.fillText(id, plot.left + g * group + group * 0.15, height - 6);
  });
}

function placeholder(ctx, width, height) {
  ctx.fillStyle = MUTED;
  ctx.fillText('waiting for a request…', width / 2 - 50, height / 2);
}

function drawTable() {
  const body = document.getElementById('requests');
  body.replaceChildren(
    ...requests.map((r) => {
      const peak = r.layers.reduce((a, b) => (Math.abs(b.output_max) > Math.abs(a.output_max) ? b : a), r.layers[0]);
      const cells = [
        r.requestId,
        r.choice,
        r.mode,
        r.prompt,
        peak ? `${peak.layer} (ch ${peak.output_channel}, ${peak.output_max.toFixed(1)})` : '',
        r.supers.map((s) => `${s.id}: ${s.value.toFixed(2)}`).join(', '),
        r.end ? `${r.end.prompt_tokens} + ${r.end.completion_tokens}` : '…',
        r.end?.finish_reason ?? '…',
      ];
      const row = document.createElement('tr');
      row.style.color = COLORS[r.mode] ?? '';
      for (const cell of cells) {
        const td = document.createElement('td');
        td.textContent = String(cell);
        row.append(td);
      }
      return row;
    }),
  );
}

draw();
connect();
