// Knowledge bases: create, upload documents with a progress bar, watch them ingest, read chunks, test retrieval.

import { api, upload } from '../api.js';
import { clear, field, formatTime, h, toast } from '../dom.js';
import { go } from '../router.js';

const PENDING = new Set(['queued', 'parsing', 'embedding']);

function createForm() {
  const name = h('input', { name: 'name', required: true, maxlength: 100 });
  const description = h('input', { name: 'description', maxlength: 500 });
  const form = h('form', { class: 'card', 'aria-labelledby': 'kb-new' },
    h('h2', { id: 'kb-new' }, 'New knowledge base'), field('Name', name), field('Description', description),
    h('button', { type: 'submit' }, 'Create'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const kb = await api('/v1/knowledge', { method: 'POST', body: { name: name.value, description: description.value } });
      go(`knowledge/${kb.id}`);
    } catch (error) {
      toast(error.message, 'error');
    }
  });
  return form;
}

async function listPage(main) {
  const page = await api('/v1/knowledge?size=100');
  const rows = page.list.map((kb) => h('tr', {},
    h('td', {}, h('a', { href: `#/knowledge/${encodeURIComponent(kb.id)}` }, kb.name)),
    h('td', {}, kb.description || ''), h('td', {}, kb.embedding_model), h('td', {}, formatTime(kb.created_at))));
  main.append(h('h1', {}, 'Knowledge bases'), h('div', { class: 'columns' },
    h('section', { class: 'card', 'aria-labelledby': 'kb-list' }, h('h2', { id: 'kb-list' }, 'Your bases'),
      rows.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Description'), h('th', {}, 'Embedding'), h('th', {}, 'Created'))), h('tbody', {}, rows))
        : h('p', { class: 'muted' }, 'None yet.')),
    createForm()));
}

function status(doc) {
  const label = doc.status === 'ready' ? 'ready' : doc.status === 'failed' ? 'failed' : `${doc.status} ${doc.progress.chunks_done}/${doc.progress.chunks_total || '?'}`;
  return h('span', { class: ['badge', doc.status] }, label);
}

function uploader(kbId, onDone) {
  const input = h('input', { type: 'file', name: 'file', required: true, multiple: true });
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const note = h('p', { class: 'muted', 'aria-live': 'polite' });
  const form = h('form', { class: 'card', 'aria-labelledby': 'kb-upload' },
    h('h2', { id: 'kb-upload' }, 'Upload documents'),
    field('Files', input, 'Text, Markdown, HTML, PDF, Word, CSV, Excel or JSON, up to 50 MB each.'),
    bar, note, h('button', { type: 'submit' }, 'Upload'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const file of input.files) {
      const data = new FormData();
      data.append('file', file);
      data.append('purpose', 'retrieval');
      data.append('knowledge_id', kbId);
      bar.hidden = false;
      bar.value = 0;
      note.textContent = `Uploading ${file.name}…`;
      try {
        const answer = await upload('/v1/files', data, (fraction) => { bar.value = fraction; });
        bar.value = 1;
        const info = answer.successInfos?.[0];
        note.textContent = info?.duplicate ? `${file.name} is already in this base.` : `${file.name} uploaded; reading it now.`;
      } catch (error) {
        note.textContent = `${file.name}: ${error.message}`;
        note.className = 'error';
      }
    }
    form.reset();
    onDone();
  });
  return form;
}

function chunkView(doc) {
  const box = h('section', { class: 'card', 'aria-labelledby': 'chunks-title' });
  api(`/v1/document/${encodeURIComponent(doc.id)}/chunks?size=50`).then((page) => {
    clear(box, h('h2', { id: 'chunks-title', tabindex: -1 }, `Chunks of ${doc.name} (${page.total})`),
      h('ol', { class: 'chunks' }, page.list.map((c) => h('li', {},
        h('small', { class: 'muted' }, [c.headings?.join(' > '), c.page ? `page ${c.page}` : '', `${c.tokens} tokens`].filter(Boolean).join(' · ')),
        h('pre', {}, c.text)))));
    box.querySelector('h2').focus();
  }).catch((error) => clear(box, h('p', { class: 'error' }, error.message)));
  return box;
}

function retrievalBox(kbId) {
  const query = h('input', { name: 'query', required: true });
  const mode = h('select', { name: 'mode' }, ['hybrid', 'vector', 'keyword'].map((m) => h('option', { value: m }, m)));
  const results = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', 'aria-labelledby': 'kb-test' },
    h('h2', { id: 'kb-test' }, 'Retrieval test'), field('Question', query), field('Mode', mode),
    h('button', { type: 'submit' }, 'Search'), results);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const answer = await api(`/v1/knowledge/${encodeURIComponent(kbId)}/retrieve`, { method: 'POST', body: { query: query.value, mode: mode.value, top_k: 5 } });
      clear(results, answer.chunks.length ? h('ol', { class: 'hits' }, answer.chunks.map((c) => h('li', { class: 'hit' },
        h('strong', {}, c.document_name), ` · score ${c.score.toFixed(3)}`, h('pre', {}, c.text)))) : h('p', { class: 'muted' }, 'No chunk matched.'));
    } catch (error) {
      clear(results, h('p', { class: 'error' }, error.message));
    }
  });
  return form;
}

async function basePage(main, kbId, signal) {
  const kb = await api(`/v1/knowledge/${encodeURIComponent(kbId)}`);
  const tbody = h('tbody');
  const detail = h('div');
  let timer = 0;
  const refresh = async () => {
    clearTimeout(timer);
    if (signal.aborted || !main.isConnected) return;
    const page = await api(`/v1/knowledge/${encodeURIComponent(kbId)}/documents?limit=100`);
    clear(tbody, page.list.map((doc) => h('tr', { dataset: { status: doc.status } },
      h('td', {}, doc.name), h('td', {}, status(doc), doc.failInfo ? h('small', { class: 'error' }, ` ${doc.failInfo.embedding_msg}`) : null),
      h('td', { class: 'num' }, String(doc.length ?? '')),
      h('td', {}, h('button', { type: 'button', class: 'quiet small', disabled: doc.status !== 'ready', onclick: () => clear(detail, chunkView(doc)) }, 'Chunks'),
        ' ', h('button', { type: 'button', class: 'danger small', onclick: async () => { await api(`/v1/document/${encodeURIComponent(doc.id)}`, { method: 'DELETE' }); refresh(); } }, 'Delete')))));
    if (!page.list.length) tbody.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No documents yet.')));
    if (page.list.some((doc) => PENDING.has(doc.status))) timer = setTimeout(refresh, 1000);
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  main.append(h('p', {}, h('a', { href: '#/knowledge' }, '← All knowledge bases')), h('h1', {}, kb.name),
    kb.description ? h('p', { class: 'muted' }, kb.description) : null,
    h('div', { class: 'columns' },
      h('section', { class: 'card', 'aria-labelledby': 'docs-title' }, h('h2', { id: 'docs-title' }, 'Documents'),
        h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Characters'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')))), tbody)),
      h('div', {}, uploader(kbId, refresh), retrievalBox(kbId))),
    detail);
  await refresh();
}

export async function render(main, args, signal) {
  if (args[0]) await basePage(main, args[0], signal);
  else await listPage(main);
}
