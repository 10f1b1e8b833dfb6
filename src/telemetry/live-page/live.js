// The live page: subscribes to /v1/activations (prefill frames and end frames only) and redraws two
// canvases and a table as requests arrive, one colour per switch plan. Plain browser JavaScript,
// served as is. A refused connection is explained by the server (a plain GET of the same URL says
// why); the page retries only when retrying can help.
const LATEST_REQUESTS = 8;
const RECONNECT_MS = 2000;
// Statuses worth retrying: the upgrade would be accepted (200), the server is full or not ready.
const RETRYABLE = new Set([200, 429, 503]);
const COLORS = {
  original: '#4ea1ff',
  zeroed: '#ff5c5c',
  zeroed_sa_restored: '#c77dff',
  scaled_down: '#f2b84b',
  scaled_down_sa_restored: '#c9923a',
  scaled_up: '#6fd08c',
  scaled_up_sa_restored: '#3fa874',
  scaled_negative: '#ff8fc7',
  scaled_negative_sa_restored: '#d0669c',
  custom: '#9aa5b1',
};
const MUTED = '#7d8793';
const PLAN_ORDER = Object.keys(COLORS);

const requests = []; // newest first: { key, requestId, choice, plan, scale, prompt, layers, supers, end }
const latestByPlan = new Map(); // plan -> latest prefill request
const statusEl = document.getElementById('status');

function streamQuery() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams({ decode_every: '0' });
  for (const key of ['api_key', 'request_ids', 'plans', 'modes', 'layers']) if (params.get(key)) query.set(key, params.get(key));
  return query;
}

function connect() {
  const query = streamQuery();
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/v1/activations?${query}`);
  let opened = false;
  ws.onopen = () => {
    opened = true;
    setStatus('connected', 'connected');
  };
  ws.onclose = () => (opened ? retry('disconnected') : explainRefusal(query));
  ws.onmessage = (message) => onFrame(JSON.parse(message.data));
}

function retry(why) {
  setStatus('disconnected', `${why}; retrying in ${RECONNECT_MS / 1000} s`);
  setTimeout(connect, RECONNECT_MS);
}

/** The browser does not say why an upgrade failed; the same URL without the upgrade does. */
async function explainRefusal(query) {
  let status = 0;
  let message = 'the server could not be reached';
  try {
    const res = await fetch(`/v1/activations?${query}`);
    status = res.status;
    message = (await res.json()).error?.message ?? `HTTP ${res.status}`;
  } catch {
    // Network down or a proxy in the way: retrying is all there is to do.
  }
  if (status === 0 || RETRYABLE.has(status)) return retry(status === 200 || status === 0 ? 'connection lost' : message);
  setStatus('refused', `the server refused the activation stream (${status}): ${message}`);
}

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

/** "zeroed, SA restored", "scaled x0.5": what a plan did, for people. */
function describePlan(plan, scale) {
  const restored = plan.endsWith('_sa_restored') ? ', SA restored' : '';
  if (plan === 'original' || plan === 'custom') return plan;
  if (plan.startsWith('zeroed')) return `zeroed${restored}`;
  return `scaled ×${scale}${restored}`;
}

function onFrame(frame) {
  if (frame.type === 'step' && frame.phase === 'prefill') {
    const request = {
      key: `${frame.request_id}/${frame.choice}`,
      requestId: frame.request_id,
      choice: frame.choice,
      plan: frame.switch.plan,
      scale: frame.switch.scale,
      prompt: frame.input_tokens.map((t) => t.text).join(''),
      layers: frame.layers,
      supers: frame.super_activations,
      end: null,
    };
    requests.unshift(request);
    requests.length = Math.min(requests.length, LATEST_REQUESTS);
    latestByPlan.set(request.plan, request);
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
  drawLegend();
  drawLayers(document.getElementById('layers'));
  drawSupers(document.getElementById('supers'));
  drawTable();
  document.body.dataset.requests = String(requests.length);
}

function drawLegend() {
  const plans = PLAN_ORDER.filter((p) => latestByPlan.has(p));
  document.getElementById('legend').replaceChildren(
    ...plans.map((plan) => {
      const item = document.createElement('span');
      const swatch = document.createElement('i');
      swatch.style.background = COLORS[plan];
      item.append(swatch, describePlan(plan, latestByPlan.get(plan).scale));
      return item;
    }),
  );
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
    ctx.fillStyle = COLORS[request.plan] ?? MUTED;
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

/** About five round values spanning [bottom, top] (1, 2 or 5 times a power of ten apart). */
function niceTicks(bottom, top) {
  const raw = (top - bottom) / 5 || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.ceil(bottom / step) * step; v <= top + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

function drawSupers(canvas) {
  const { ctx, width, height } = prepare(canvas);
  const ids = [...new Set([...latestByPlan.values()].flatMap((r) => r.supers.map((s) => s.id)))];
  if (ids.length === 0) return placeholder(ctx, width, height);
  const plans = PLAN_ORDER.filter((p) => latestByPlan.has(p));
  const value = (plan, id) => latestByPlan.get(plan)?.supers.find((s) => s.id === id)?.value ?? 0;
  const values = ids.flatMap((id) => plans.map((p) => value(p, id)));
  const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values));
  const top = Math.max(0, ...values, ticks[ticks.length - 1]);
  const bottom = Math.min(0, ...values, ticks[0]);
  const plot = { left: 52, right: width - 8, top: 14, bottom: height - 36 };
  const scale = (plot.bottom - plot.top) / Math.max(1e-6, top - bottom);
  const y = (v) => plot.top + (top - v) * scale;
  // The y axis: gridlines and their values, the zero line darker.
  for (const tick of ticks) {
    ctx.strokeStyle = tick === 0 ? MUTED : '#242c35';
    ctx.beginPath();
    ctx.moveTo(plot.left, y(tick));
    ctx.lineTo(plot.right, y(tick));
    ctx.stroke();
    ctx.fillStyle = MUTED;
    ctx.textAlign = 'right';
    ctx.fillText(String(Number(tick.toPrecision(6))), plot.left - 6, y(tick) + 4);
  }
  ctx.textAlign = 'left';
  const group = (plot.right - plot.left) / ids.length;
  const bar = (group * 0.7) / plans.length;
  ids.forEach((id, g) => {
    plans.forEach((plan, m) => {
      const v = value(plan, id);
      const x = plot.left + g * group + group * 0.15 + m * bar;
      ctx.fillStyle = COLORS[plan];
      ctx.fillRect(x, Math.min(y(0), y(v)), Math.max(1, bar - 2), Math.max(1, Math.abs(v * scale)));
      ctx.fillStyle = '#d8dee6';
      ctx.fillText(v.toFixed(v === 0 || Math.abs(v) >= 100 ? 0 : 2), x, v >= 0 ? y(v) - 4 : y(v) + 12);
    });
    ctx.fillStyle = MUTED;
    ctx.fillText(`super weight ${id}`, plot.left + g * group + group * 0.15, height - 8);
  });
}

function placeholder(ctx, width, height) {
  ctx.fillStyle = MUTED;
  ctx.fillText('waiting for a request…', width / 2 - 50, height / 2);
}

const COLUMNS = ['request', 'choice', 'plan', 'scale', 'prompt', 'peak layer', 'super activations', 'tokens', 'finish'];

function drawTable() {
  const body = document.getElementById('requests');
  body.replaceChildren(
    ...requests.map((r) => {
      const peak = r.layers.reduce((a, b) => (Math.abs(b.output_max) > Math.abs(a.output_max) ? b : a), r.layers[0]);
      const cells = [
        r.requestId,
        r.choice,
        describePlan(r.plan, r.scale),
        r.scale === null ? 'mixed' : r.scale,
        r.prompt,
        peak ? `${peak.layer} (ch ${peak.output_channel}, ${peak.output_max.toFixed(1)})` : '',
        r.supers.map((s) => `${s.id}: ${s.value.toFixed(2)}`).join(', '),
        r.end ? `${r.end.prompt_tokens} + ${r.end.completion_tokens}` : '…',
        r.end?.finish_reason ?? '…',
      ];
      const row = document.createElement('tr');
      row.dataset.plan = r.plan;
      row.style.color = COLORS[r.plan] ?? '';
      cells.forEach((cell, i) => {
        const td = document.createElement('td');
        td.dataset.label = COLUMNS[i];
        td.textContent = String(cell);
        row.append(td);
      });
      return row;
    }),
  );
}

draw();
connect();
