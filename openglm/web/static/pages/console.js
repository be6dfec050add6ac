// The console: balance, storage, usage by day (a chart) and by model, API keys (secret shown once), prices, ledger,
// and the account's recent content-safety hits.

import { ApiError, api } from '../api.js';
import { clear, field, formatTime, h, toast } from '../dom.js';
import { barChart } from '../chart.js';
import { refreshChrome } from '../main.js';
import { session } from '../session.js';

const METRICS = {
  total_tokens: ['Tokens', (n) => String(Math.round(n))],
  requests: ['Requests', (n) => String(Math.round(n))],
  cost: ['Cost (CNY)', (n) => n.toFixed(4)],
};

function groupTable(rows, label, className) {
  return h('table', { class: className }, h('thead', {}, h('tr', {}, [label, 'Requests', 'Prompt', 'Completion', 'Images', 'Cost'].map((t, i) => h('th', { class: i ? 'num' : '' }, t)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, h('td', {}, r.group),
      [r.requests, r.prompt_tokens, r.completion_tokens, r.images, r.cost].map((v) => h('td', { class: 'num' }, String(v)))))));
}

function usageCard(byDay, byModel, byAgent) {
  const chartBox = h('div');
  const metric = h('select', { name: 'metric' }, Object.entries(METRICS).map(([k, [label]]) => h('option', { value: k }, label)));
  const draw = () => {
    const [label, format] = METRICS[metric.value];
    const rows = byDay.data.slice().sort((a, b) => a.group.localeCompare(b.group));
    clear(chartBox, rows.length
      ? barChart(rows, { title: `${label} per day`, valueOf: (r) => Number(r[metric.value]), labelOf: (r) => r.group.slice(5), format })
      : h('p', { class: 'muted' }, 'No usage yet.'));
  };
  metric.addEventListener('change', draw);
  draw();
  // calls through agents (GLMs), where the server groups them; the server's '(no agent)' row (direct calls) is not one
  const agents = (byAgent?.data || []).filter((r) => r.group && r.group !== '(no agent)');
  return h('section', { class: 'card', 'aria-labelledby': 'usage-title' },
    h('h2', { id: 'usage-title' }, 'Usage'), field('Show', metric), chartBox,
    h('h3', {}, 'By model'), byModel.data.length ? groupTable(byModel.data, 'Model', 'by-model') : h('p', { class: 'muted' }, 'No usage yet.'),
    agents.length ? [h('h3', {}, 'By agent'), groupTable(agents, 'Agent', 'by-agent')] : null,
    h('p', { class: 'muted' }, `Total cost: ¥${byModel.total_cost}`));
}

function keysCard(keys, reload) {
  const name = h('input', { name: 'name', maxlength: 200, placeholder: 'e.g. laptop' });
  const secret = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const made = await api('/v1/account/keys', { method: 'POST', body: { name: name.value } });
      const copy = h('button', { type: 'button', class: 'quiet small', onclick: () => navigator.clipboard?.writeText(made.key).then(() => toast('Copied.')) }, 'Copy');
      clear(secret, h('div', { class: 'card secret', role: 'alert' },
        h('strong', {}, 'Your new key — it is shown only this once:'), h('code', { class: 'new-key' }, made.key), copy));
      name.value = '';
      reload();
    } catch (error) {
      toast(error.message, 'error');
    }
  } }, field('Key name', name), h('button', { type: 'submit' }, 'Create key'));
  const rows = keys.map((k) => {
    const disabled = k.status === 'disabled' || k.disabled === true;
    return h('tr', { dataset: { key: k.id } },
      h('td', {}, k.name || h('span', { class: 'muted' }, '(no name)')),
      h('td', {}, h('code', {}, `${k.id.slice(0, 8)}…${k.secret_hint ? `.${k.secret_hint}` : ''}`)),
      h('td', {}, h('span', { class: ['badge', disabled ? 'disabled' : 'ready'] }, disabled ? 'disabled' : 'active')),
      h('td', {}, formatTime(k.created_at)), h('td', {}, formatTime(k.last_used_at) || '—'),
      h('td', {},
        // The console disables but never enables: it cannot tell a key the account disabled from one an operator
        // did, so the server refuses it (403); a new key is the way back.
        disabled
          ? h('span', { class: 'muted small', title: 'Ask an operator to enable it, or create a new key.' }, 'ask an operator to enable')
          : h('button', { type: 'button', class: 'quiet small', onclick: async () => {
            await api(`/v1/account/keys/${encodeURIComponent(k.id)}`, { method: 'PATCH', body: { disabled: true } }).catch((e) => toast(e.message, 'error'));
            reload();
          } }, 'Disable'), ' ',
        h('button', { type: 'button', class: 'danger small', onclick: async () => {
          if (!confirm(`Delete the key ${k.name || k.id}? Programs using it stop working.`)) return;
          await api(`/v1/account/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' }).catch((e) => toast(e.message, 'error'));
          reload();
        } }, 'Delete')));
  });
  return h('section', { class: 'card', 'aria-labelledby': 'keys-title' }, h('h2', { id: 'keys-title' }, 'API keys'), form, secret,
    h('table', { class: 'keys' }, h('thead', {}, h('tr', {}, ['Name', 'Key', 'Status', 'Created', 'Last used', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No keys yet.')))));
}

function pricesCard(prices) {
  const money = (v) => (v == null ? '—' : String(v));
  return h('section', { class: 'card', 'aria-labelledby': 'prices-title' }, h('h2', { id: 'prices-title' }, 'Prices'),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Model'), h('th', { class: 'num' }, 'Input / 1K tokens'), h('th', { class: 'num' }, 'Output / 1K tokens'), h('th', { class: 'num' }, 'Per image'))),
      h('tbody', {}, prices.map((p) => h('tr', {}, h('td', {}, p.model), h('td', { class: 'num' }, money(p.input_per_1k)), h('td', { class: 'num' }, money(p.output_per_1k)), h('td', { class: 'num' }, money(p.per_image)))))));
}

function ledgerCard(entries) {
  return h('section', { class: 'card', 'aria-labelledby': 'ledger-title' }, h('h2', { id: 'ledger-title' }, 'Recent ledger entries'),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Kind'), h('th', { class: 'num' }, 'Amount'), h('th', {}, 'Note'))),
      h('tbody', {}, entries.map((e) => h('tr', {}, h('td', {}, formatTime(e.created_at)), h('td', {}, e.kind), h('td', { class: 'num' }, e.amount), h('td', {}, e.note || e.usage_id || ''))))));
}

// What content safety stopped for this account: the request it was, where (the caller's input, the model's output,
// a /moderations check), the category and the words that matched (shown as text, never as markup).
function hitsCard(hits) {
  const stages = { input: 'request', output: 'answer', moderations: '/moderations' };
  const rows = hits.map((x) => h('tr', { dataset: { hit: x.id } },
    h('td', {}, formatTime(x.created_at)), h('td', {}, stages[x.stage] || x.stage), h('td', {}, x.category),
    h('td', {}, x.model), h('td', {}, h('code', {}, x.request_id)), h('td', { class: 'matched' }, x.matched)));
  return h('section', { class: 'card', 'aria-labelledby': 'hits-title' }, h('h2', { id: 'hits-title' }, 'Content safety'),
    h('table', { class: 'hits' }, h('thead', {}, h('tr', {}, ['When', 'Stage', 'Category', 'Model', 'Request', 'Matched'].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Nothing was stopped.')))));
}

function bytes(n) {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GB`;
  return n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} KB`;
}

// Files the account keeps (uploads, knowledge documents, code outputs, pictures) against its storage quota.
function storageStat(storage) {
  const full = storage.quota_bytes != null && storage.used_bytes >= storage.quota_bytes;
  const quota = storage.quota_bytes == null ? 'unlimited' : bytes(storage.quota_bytes);
  return h('div', { class: ['card', 'stat'], title: `${storage.used_bytes} bytes` },
    h('span', { class: 'muted' }, 'Storage'), h('strong', { class: 'storage' }, `${bytes(storage.used_bytes)} of ${quota}`),
    full ? h('span', { class: 'badge disabled' }, 'full: delete files to add more') : null);
}

async function optional(path, empty) {
  try {
    return await api(path);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.code === '1222') return empty; // not on this server yet
    throw error;
  }
}

export async function render(main) {
  const body = h('div');
  main.append(h('h1', {}, 'Console'), body);
  const load = async () => {
    const [account, byDay, byModel, byAgent, keys, prices, ledger, storage, hits] = await Promise.all([
      api('/v1/account'), api('/v1/account/usage?by=day'), api('/v1/account/usage?by=model'), api('/v1/account/usage?by=agent').catch(() => null),
      optional('/v1/account/keys', null), optional('/v1/account/prices', null), api('/v1/account/ledger?limit=10'),
      optional('/v1/account/storage', null), optional('/v1/account/moderation/hits?limit=10', null),
    ]);
    session.account = account;
    refreshChrome();
    const requests = byModel.data.reduce((n, r) => n + r.requests, 0);
    const tokens = byModel.data.reduce((n, r) => n + r.total_tokens, 0);
    clear(body,
      h('div', { class: 'stats' },
        h('div', { class: 'card stat' }, h('span', { class: 'muted' }, 'Balance'), h('strong', { class: 'balance' }, `¥${account.balance}`)),
        h('div', { class: 'card stat' }, h('span', { class: 'muted' }, 'Requests'), h('strong', { class: 'requests' }, String(requests))),
        h('div', { class: 'card stat' }, h('span', { class: 'muted' }, 'Tokens'), h('strong', {}, String(tokens))),
        storage ? storageStat(storage) : null),
      usageCard(byDay, byModel, byAgent),
      keys ? keysCard(keys.data, load) : h('section', { class: 'card' }, h('h2', {}, 'API keys'), h('p', { class: 'muted' }, 'Keys are managed with `openglm keys` on this server.')),
      prices ? pricesCard(prices.data) : null,
      ledgerCard(ledger.data),
      hits ? hitsCard(hits.data) : null);
  };
  await load();
}
