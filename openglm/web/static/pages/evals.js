// Evals: start a run of the server's eval suites against up to four models (a job that calls the API as this account,
// billed like any call), the account's runs, and a run's report — per suite a summary table and a per-family table
// with the models side by side, a bar chart of per-family scores, and the failures.

import { ApiError, api } from '../api.js';
import { groupedBarChart } from '../chart.js';
import { clear, field, formatTime, h, toast } from '../dom.js';
import { go } from '../router.js';

const ACTIVE = new Set(['queued', 'running', 'paused']);
const POLL_MS = 1000;
const MAX_MODELS = 4; // the API's bound: models compared side by side
const FAILURES_SHOWN = 10; // per suite and model
const runPath = (id) => `/v1/evals/runs/${encodeURIComponent(id)}`;
const percent = (value) => (typeof value === 'number' ? `${(100 * value).toFixed(1)}%` : '–');

function badge(status) {
  const kind = status === 'succeeded' ? 'ready' : status === 'failed' || status === 'cancelled' ? 'failed' : status;
  return h('span', { class: ['badge', kind] }, status);
}

function progressText(run) {
  const { done, failed, total } = run.progress;
  return `${done} of ${total} tasks done${failed ? ` · ${failed} failed` : ''}`;
}

function familiesText(suite) {
  return suite.families.map((f) => `${f.name} (${f.split === 'heldout' ? 'held-out' : f.split}, ${f.tasks})`).join(', ');
}

function createForm(suites, models) {
  const suiteBoxes = suites.map((suite) => h('input', { type: 'checkbox', name: 'suites', value: suite.name, checked: suites.length === 1 }));
  const modelBoxes = models.map((model) => h('input', { type: 'checkbox', name: 'models', value: model.id, checked: model.id === 'default' }));
  const limitModels = () => {
    const chosen = modelBoxes.filter((box) => box.checked).length;
    for (const box of modelBoxes) box.disabled = !box.checked && chosen >= MAX_MODELS;
  };
  modelBoxes.forEach((box) => box.addEventListener('change', limitModels));
  limitModels();
  const perFamily = h('input', { type: 'number', name: 'per_family', min: 1, max: 100, step: 1, placeholder: 'all' });
  const split = h('select', { name: 'split' }, h('option', { value: '' }, 'Both'), h('option', { value: 'train' }, 'Train'),
    h('option', { value: 'heldout' }, 'Held-out'));
  const seed = h('input', { type: 'number', name: 'seed', min: 0, step: 1, value: '0' });
  const outcome = h('div', { 'aria-live': 'polite' });
  const start = h('button', { type: 'submit', disabled: !suites.length }, 'Start run');
  const form = h('form', { class: 'card', 'aria-labelledby': 'eval-new' }, h('h2', { id: 'eval-new' }, 'New run'),
    suites.length
      ? h('fieldset', { class: 'suite-choices' }, h('legend', {}, 'Suites'), suites.map((suite, i) => h('div', {},
        h('label', {}, suiteBoxes[i], ` ${suite.name}`), h('small', { class: 'hint' }, `${suite.description} Families: ${familiesText(suite)}.`))))
      : h('p', { class: 'muted' }, 'This server has no eval suites.'),
    h('fieldset', { class: 'model-choices' }, h('legend', {}, `Models (up to ${MAX_MODELS}, side by side)`),
      models.map((model, i) => h('label', {}, modelBoxes[i], ` ${model.id}`))),
    h('div', { class: 'row' }, field('Tasks per family', perFamily), field('Split', split), field('Seed', seed)),
    h('p', { class: 'hint' }, 'The run calls the models through the API as this account: its calls are billed like any other.'),
    outcome, start);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(outcome);
    const body = {
      suites: suiteBoxes.filter((box) => box.checked).map((box) => box.value),
      models: modelBoxes.filter((box) => box.checked).map((box) => box.value),
      per_family: perFamily.value === '' ? null : Number(perFamily.value),
      split: split.value || null,
      seed: seed.value === '' ? 0 : Number(seed.value),
    };
    start.disabled = true;
    try {
      const run = await api('/v1/evals/runs', { method: 'POST', body });
      go(`evals/${encodeURIComponent(run.id)}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      clear(outcome, h('p', { class: 'error', role: 'alert' }, error.message));
      start.disabled = false;
    }
  });
  return form;
}

async function listPage(main, signal) {
  const [suites, models] = await Promise.all([api('/v1/evals/suites'), api('/v1/models')]);
  const tbody = h('tbody');
  let timer = 0;
  const refresh = async () => {
    if (signal.aborted) return;
    const page = await api('/v1/evals/runs?limit=50', { signal });
    clear(tbody, page.data.map((run) => h('tr', { dataset: { status: run.status } },
      h('td', {}, h('a', { href: `#/evals/${encodeURIComponent(run.id)}` }, run.id)), h('td', {}, badge(run.status)),
      h('td', {}, run.suites.join(', ')), h('td', {}, run.models.join(', ')),
      h('td', { class: 'num' }, `${run.progress.done}/${run.progress.total}`), h('td', {}, formatTime(run.created_at)))));
    if (!page.data.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No runs yet.')));
    if (page.data.some((run) => ACTIVE.has(run.status))) timer = setTimeout(() => refresh().catch(() => {}), 2 * POLL_MS);
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  const choices = models.data.filter((card) => card.kind !== 'embedding');
  main.append(h('h1', {}, 'Evals'), h('div', { class: 'columns' },
    h('section', { class: 'card', 'aria-labelledby': 'eval-runs' }, h('h2', { id: 'eval-runs' }, 'Runs'),
      h('div', { class: 'table-scroll' }, h('table', { class: 'eval-runs' }, h('thead', {}, h('tr', {},
        ['Run', 'Status', 'Suites', 'Models', 'Tasks', 'Created'].map((t, i) => h('th', { class: i === 4 ? 'num' : '' }, t)))), tbody))),
    createForm(suites.data, choices)));
  await refresh();
}

function details(run) {
  const rows = [
    ['Status', badge(run.status)], ['Suites', run.suites.join(', ')], ['Models', run.models.join(', ')],
    ['Split', run.split === 'heldout' ? 'held-out' : run.split || 'both'], ['Tasks per family', run.per_family ?? 'all'],
    ['Seed', run.seed], ['Created', formatTime(run.created_at)], ['Finished', formatTime(run.finished_at)],
    ['Error', run.error ? `${run.error.message} (${run.error.code})` : null],
  ];
  return h('dl', { class: 'job-details' }, rows.filter(([, v]) => v != null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function summaryTable(models, summaries) {
  const heads = ['Model', 'Score', 'Held-out', 'Train', 'Tasks', 'Errors', 'p50 latency'];
  return h('table', { class: 'eval-summary' }, h('thead', {}, h('tr', {}, heads.map((t, i) => h('th', { class: i ? 'num' : '' }, t)))),
    h('tbody', {}, models.filter((m) => summaries[m]).map((model) => {
      const s = summaries[model];
      const cells = [percent(s.score), percent(s.heldout), percent(s.train), s.tasks, s.errors, `${(s.latency_p50_s ?? 0).toFixed(2)} s`];
      return h('tr', { dataset: { model } }, h('th', { scope: 'row' }, model), cells.map((c) => h('td', { class: 'num' }, String(c))));
    })));
}

function familyNames(models, summaries) {
  return [...new Set(models.flatMap((m) => Object.keys(summaries[m]?.families || {})))].sort();
}

function familyTable(models, summaries) {
  const families = familyNames(models, summaries);
  const splits = Object.assign({}, ...models.map((m) => summaries[m]?.family_splits || {}));
  return h('table', { class: 'eval-families' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Family'), h('th', {}, 'Split'), models.map((m) => h('th', { class: 'num' }, m)))),
    h('tbody', {}, families.map((family) => h('tr', { dataset: { family } }, h('th', { scope: 'row' }, family),
      h('td', {}, splits[family] === 'heldout' ? 'held-out' : splits[family] || ''),
      models.map((m) => h('td', { class: 'num' }, percent(summaries[m]?.families?.[family])))))));
}

function familyChart(suite, models, summaries) {
  const families = familyNames(models, summaries);
  if (!families.length) return null;
  return groupedBarChart(families, models, {
    title: `${suite}: score per family`,
    valueOf: (family, model) => summaries[model]?.families?.[family] ?? null,
    format: percent,
  });
}

function failureList(models, results) {
  const items = models.flatMap((model) => (results?.[model] || []).filter((o) => !o.passed).slice(0, FAILURES_SHOWN)
    .map((o) => h('li', { dataset: { model } }, h('strong', {}, model), ' ', h('code', {}, o.task_id), ` (${o.family}): `,
      h('span', { class: o.error ? 'error' : '' }, o.error || o.detail || 'failed'))));
  return items.length ? h('ul', { class: 'eval-failures' }, items) : h('p', { class: 'muted' }, 'No failures.');
}

function report(run, descriptions) {
  return run.suites.map((suite) => {
    const summaries = run.summaries?.[suite] || {};
    const headingId = `eval-suite-${suite.replace(/[^A-Za-z0-9_-]/g, '-')}`;
    return h('section', { class: 'card eval-report', 'aria-labelledby': headingId, dataset: { suite } },
      h('h2', { id: headingId }, suite), descriptions.get(suite) ? h('p', { class: 'muted' }, descriptions.get(suite)) : null,
      h('h3', {}, 'Summary'), summaryTable(run.models, summaries),
      h('h3', {}, 'Per family'), familyTable(run.models, summaries), familyChart(suite, run.models, summaries),
      h('h3', {}, `Failures (first ${FAILURES_SHOWN} per model)`), failureList(run.models, run.results?.[suite]));
  });
}

async function runPage(main, runId, signal) {
  const listing = api('/v1/evals/suites', { signal }).catch(() => ({ data: [] })); // descriptions only: optional
  let run = await api(runPath(runId), { signal });
  const descriptions = new Map((await listing).data.map((suite) => [suite.name, suite.description]));
  const head = h('div');
  const actions = h('div', { class: 'row' });
  const progress = h('progress', { max: 1, value: 0, 'aria-label': 'Run progress' });
  const summary = h('p', { class: 'progress-summary', 'aria-live': 'polite' });
  const reportBox = h('div', { class: 'eval-reports' });
  let timer = 0;
  let reported = false;

  const show = () => {
    clear(head, details(run));
    progress.value = run.progress.total ? run.progress.done / run.progress.total : 0;
    summary.textContent = progressText(run);
    const cancel = ACTIVE.has(run.status) ? h('button', { type: 'button', class: 'danger', onclick: async (e) => {
      e.target.disabled = true;
      try {
        run = await api(`${runPath(runId)}/cancel`, { method: 'POST' });
        show();
      } catch (error) {
        toast(error.message, 'error');
        e.target.disabled = false;
      }
    } }, 'Cancel run') : null;
    clear(actions, cancel);
    if (run.status === 'succeeded' && !reported) {
      reported = true;
      clear(reportBox, report(run, descriptions));
    }
  };
  const poll = async () => {
    if (signal.aborted) return;
    try {
      run = await api(runPath(runId), { signal });
      show();
      if (ACTIVE.has(run.status)) timer = setTimeout(poll, POLL_MS);
    } catch {
      if (!signal.aborted) timer = setTimeout(poll, 5 * POLL_MS); // the server may be restarting: keep watching
    }
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  main.append(h('p', {}, h('a', { href: '#/evals' }, '← All eval runs')), h('h1', {}, `Eval run ${run.id}`),
    h('section', { class: 'card', 'aria-labelledby': 'eval-run' }, h('h2', { id: 'eval-run' }, 'Run'), head, progress, summary, actions),
    reportBox);
  show();
  if (ACTIVE.has(run.status)) timer = setTimeout(poll, POLL_MS);
}

export async function render(main, args, signal) {
  if (args[0]) await runPage(main, args[0], signal);
  else await listPage(main, signal);
}
