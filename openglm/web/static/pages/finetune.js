// Fine-tuning: upload a JSONL training file and start a job (the server's line-numbered problems listed), the
// jobs, and a job's view — progress, a live loss chart (training and validation), events, cancel, and the new
// model opened in the playground.

import { ApiError, api, fileBlob, upload } from '../api.js';
import { lineChart } from '../chart.js';
import { clear, field, formatTime, h, toast } from '../dom.js';
import { go } from '../router.js';

const ACTIVE = new Set(['validating_files', 'queued', 'running']);
const POLL_MS = 1000;
const jobPath = (id) => `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`;

// The server lists a file's problems as "…: line 2: …; line 5: … (and 3 more lines with problems)".
export function problemsOf(message) {
  const more = message.match(/ (\(and \d+ more lines? with problems\))$/);
  const body = more ? message.slice(0, more.index) : message;
  const parts = body.split(/(?:; |: )(?=line \d+[: ])/);
  if (parts.length < 2) return { head: message, lines: [] };
  return { head: parts[0], lines: [...parts.slice(1), ...(more ? [more[1]] : [])] };
}

function problemsView(error) {
  const { head, lines } = problemsOf(error.message);
  return h('div', { class: 'problems', role: 'alert' }, h('p', { class: 'error' }, head + (lines.length ? ':' : '')),
    lines.length ? h('ul', { class: 'line-problems' }, lines.map((line) => h('li', {}, line))) : null);
}

function badge(status) {
  const kind = status === 'succeeded' ? 'ready' : status === 'failed' || status === 'cancelled' ? 'failed' : status;
  return h('span', { class: ['badge', kind] }, status);
}

function numberBox(name, step, min) {
  return h('input', { type: 'number', name, step, min, placeholder: 'auto' });
}

function createForm(models) {
  const training = h('input', { type: 'file', name: 'training', required: true, accept: '.jsonl' });
  const validation = h('input', { type: 'file', name: 'validation', accept: '.jsonl' });
  const model = h('select', { name: 'model' }, models.map((m) => h('option', { value: m.id, selected: m.id === 'default' }, m.id)));
  const method = h('select', { name: 'method' }, h('option', { value: 'supervised' }, 'Supervised (chat lines)'), h('option', { value: 'dpo' }, 'DPO (preference pairs)'));
  const epochs = numberBox('n_epochs', 1, 1);
  const batch = numberBox('batch_size', 1, 1);
  const rate = numberBox('learning_rate_multiplier', 'any', 0);
  const beta = numberBox('beta', 'any', 0);
  const betaField = field('Beta', beta, 'How far DPO may move from the base.');
  const suffix = h('input', { name: 'suffix', maxlength: 40, pattern: '[A-Za-z0-9_.\\-]+' });
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const outcome = h('div', { 'aria-live': 'polite' });
  const start = h('button', { type: 'submit' }, 'Start job');
  const showBeta = () => { betaField.hidden = method.value !== 'dpo'; };
  method.addEventListener('change', showBeta);
  showBeta();
  const form = h('form', { class: 'card', 'aria-labelledby': 'ft-new' }, h('h2', { id: 'ft-new' }, 'New job'),
    field('Training file', training, 'JSONL: chat lines with "messages" (and "tools"), or DPO lines with "input", "preferred_output", "non_preferred_output".'),
    field('Validation file', validation, 'Optional, same format: its loss is charted beside the training loss.'),
    models.length ? field('Base model', model) : h('p', { class: 'error' }, 'No model on this server can be fine-tuned.'),
    field('Method', method),
    h('div', { class: 'row' }, field('Epochs', epochs), field('Batch size', batch), field('Learning rate multiplier', rate)),
    betaField, field('Suffix', suffix, 'Part of the new model\'s name.'), bar, outcome, start);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    start.disabled = true;
    clear(outcome);
    const uploaded = [];
    try {
      const files = [training.files[0], validation.files[0]];
      for (const [i, file] of files.entries()) {
        if (!file) continue;
        const data = new FormData();
        data.append('file', file);
        data.append('purpose', 'fine-tune');
        bar.hidden = false;
        bar.value = 0;
        uploaded[i] = (await upload('/v1/files', data, (fraction) => { bar.value = fraction; })).id;
      }
      const hyperparameters = {};
      for (const box of [epochs, batch, rate, ...(method.value === 'dpo' ? [beta] : [])]) {
        if (box.value !== '') hyperparameters[box.name] = Number(box.value);
      }
      const body = { model: model.value, training_file: uploaded[0], method: { type: method.value, [method.value]: { hyperparameters } } };
      if (uploaded[1]) body.validation_file = uploaded[1];
      if (suffix.value) body.suffix = suffix.value;
      const job = await api('/v1/fine_tuning/jobs', { method: 'POST', body });
      go(`finetune/${encodeURIComponent(job.id)}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      clear(outcome, problemsView(error));
      // The files were uploaded for this job alone, which was not made: nothing is left behind.
      for (const id of uploaded.filter(Boolean)) api(`/v1/files/${encodeURIComponent(id)}`, { method: 'DELETE' }).catch(() => {});
      start.disabled = false;
    }
  });
  return form;
}

async function listPage(main, signal) {
  const cards = (await api('/v1/models')).data;
  const tbody = h('tbody');
  let timer = 0;
  const refresh = async () => {
    if (signal.aborted) return;
    const page = await api('/v1/fine_tuning/jobs?limit=50');
    clear(tbody, page.data.map((job) => h('tr', { dataset: { status: job.status } },
      h('td', {}, h('a', { href: `#/finetune/${encodeURIComponent(job.id)}` }, job.id)), h('td', {}, badge(job.status)),
      h('td', {}, job.model), h('td', {}, job.fine_tuned_model || ''), h('td', {}, formatTime(job.created_at)))));
    if (!page.data.length) tbody.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No jobs yet.')));
    if (page.data.some((job) => ACTIVE.has(job.status))) timer = setTimeout(refresh, 2 * POLL_MS);
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  main.append(h('h1', {}, 'Fine-tuning'), h('div', { class: 'columns' },
    h('section', { class: 'card', 'aria-labelledby': 'ft-jobs' }, h('h2', { id: 'ft-jobs' }, 'Jobs'),
      h('table', { class: 'jobs' }, h('thead', {}, h('tr', {}, ['Job', 'Status', 'Base', 'Fine-tuned model', 'Created'].map((t) => h('th', {}, t)))), tbody)),
    createForm(cards.filter((card) => card.fine_tunable))));
  await refresh();
}

function details(job) {
  const hp = job.hyperparameters;
  const rows = [
    ['Status', badge(job.status)], ['Base model', job.model], ['Method', job.method?.type],
    ['Hyperparameters', `${hp.n_epochs} epochs, batch ${hp.batch_size}, learning rate × ${hp.learning_rate_multiplier}${hp.beta != null ? `, beta ${hp.beta}` : ''}`],
    ['Training file', job.training_file], ['Validation file', job.validation_file], ['Fine-tuned model', job.fine_tuned_model],
    ['Trained tokens', job.trained_tokens], ['Created', formatTime(job.created_at)], ['Finished', formatTime(job.finished_at)],
    ['Error', job.error ? `${job.error.message} (${job.error.code})` : null],
  ];
  return h('dl', { class: 'job-details' }, rows.filter(([, v]) => v != null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function resultFiles(job) {
  const list = h('ul', { class: 'result-files' });
  for (const id of job.result_files || []) {
    const item = h('li', {}, id);
    list.append(item);
    Promise.all([api(`/v1/files/${encodeURIComponent(id)}`), fileBlob(`/v1/files/${encodeURIComponent(id)}/content`)]).then(([info, blob]) => {
      clear(item, h('a', { href: blob.url, download: info.filename }, info.filename));
      if (blob.type === 'image/png') item.append(h('img', { class: 'loss-curve', src: blob.url, alt: `Loss curve (${info.filename})` }));
    }).catch((error) => item.append(h('small', { class: 'error' }, ` ${error.message}`)));
  }
  return list;
}

async function jobPage(main, jobId, signal) {
  let job = await api(jobPath(jobId));
  const points = new Map(); // step → {loss, eval}
  const progress = h('progress', { max: 1, value: 0, 'aria-label': 'Training progress' });
  const summary = h('p', { class: 'progress-summary', 'aria-live': 'polite' });
  const chartBox = h('div', { class: 'loss-chart' });
  const eventList = h('ol', { class: 'events' });
  const head = h('div');
  const actions = h('div', { class: 'row' });
  let after = '';
  let timer = 0;

  const drawChart = () => {
    const steps = [...points.keys()].sort((a, b) => a - b);
    const series = (key) => steps.filter((s) => points.get(s)[key] != null).map((s) => ({ x: s, y: points.get(s)[key] }));
    clear(chartBox, steps.length ? lineChart([{ name: 'training loss', className: 'train', points: series('loss') },
      { name: 'validation loss', className: 'valid', points: series('eval') }], { title: 'Loss per step', format: (v) => v.toFixed(3) })
      : h('p', { class: 'muted' }, 'The loss appears here once the job reports its first step.'));
  };
  const addEvent = (event) => {
    const data = event.type === 'metrics' ? event.data || {} : null;
    if (data && data.step != null) {
      points.set(data.step, { loss: data.train_loss, eval: data.valid_loss });
      progress.value = data.total_steps ? data.step / data.total_steps : 0;
      summary.textContent = [`step ${data.step}/${data.total_steps ?? '?'}`, data.train_loss != null ? `loss ${data.train_loss.toFixed(4)}` : '',
        data.valid_loss != null ? `validation loss ${data.valid_loss.toFixed(4)}` : '',
        data.tokens_per_second != null ? `${Math.round(data.tokens_per_second)} tokens/s` : '', data.remaining_time ? `ETA ${data.remaining_time}` : ''].filter(Boolean).join(' · ');
    }
    eventList.append(h('li', { class: ['event', event.level] }, h('time', {}, formatTime(event.created_at)), ' ', event.message));
  };
  const showJob = () => {
    clear(head, details(job));
    const playground = job.status === 'succeeded' && job.fine_tuned_model
      ? h('a', { class: 'button', href: `#/playground/${encodeURIComponent(job.fine_tuned_model)}` }, 'Open in playground') : null;
    const cancel = ACTIVE.has(job.status) ? h('button', { type: 'button', class: 'danger', onclick: async (e) => {
      e.target.disabled = true;
      try {
        job = await api(`${jobPath(jobId)}/cancel`, { method: 'POST' });
        showJob();
      } catch (error) {
        toast(error.message, 'error');
        e.target.disabled = false;
      }
    } }, 'Cancel job') : null;
    clear(actions, playground, cancel, job.result_files?.length ? resultFiles(job) : null);
    if (job.status === 'succeeded') progress.value = 1;
  };
  const poll = async () => {
    if (signal.aborted) return;
    try {
      for (;;) {
        const page = await api(`${jobPath(jobId)}/events?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`, { signal });
        page.data.forEach(addEvent);
        if (page.data.length) after = page.data[page.data.length - 1].id;
        if (!page.has_more || !page.data.length) break;
      }
      drawChart();
      const active = ACTIVE.has(job.status);
      job = await api(jobPath(jobId), { signal });
      showJob();
      // One more round after the job ends: the events it wrote before it ended.
      if (active || ACTIVE.has(job.status)) timer = setTimeout(poll, POLL_MS);
    } catch {
      if (!signal.aborted) timer = setTimeout(poll, 5 * POLL_MS); // the server may be restarting: keep watching
    }
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  main.append(h('p', {}, h('a', { href: '#/finetune' }, '← All fine-tuning jobs')), h('h1', {}, `Job ${job.id}`),
    h('div', { class: 'columns' },
      h('section', { class: 'card', 'aria-labelledby': 'ft-job' }, h('h2', { id: 'ft-job' }, 'Job'), head, actions),
      h('section', { class: 'card', 'aria-labelledby': 'ft-progress' }, h('h2', { id: 'ft-progress' }, 'Progress'), progress, summary, chartBox)),
    h('section', { class: 'card', 'aria-labelledby': 'ft-events' }, h('h2', { id: 'ft-events' }, 'Events'), eventList));
  showJob();
  await poll();
}

export async function render(main, args, signal) {
  if (args[0]) await jobPage(main, args[0], signal);
  else await listPage(main, signal);
}
