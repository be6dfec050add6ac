// Draws an assistant turn (chat/transcript.js) and keeps the drawing current as chunks arrive: each part is one
// element, updated in place, so focus and scroll survive and the live region reads the answer once it settles.

import { fileBlob } from '../api.js';
import { clear, h } from '../dom.js';
import { safeUrl } from '../url.js';
import { renderText } from './text.js';

const TOOL_NAMES = {
  code_interpreter: 'Code interpreter',
  web_browser: 'Web browser',
  drawing_tool: 'Drawing',
  retrieval: 'Knowledge retrieval',
  function: 'Function',
};

// Every URL from a tool's output goes through safeUrl (url.js) before it is an href or a src; one that fails is
// shown as text.
function unsafe(url, what) {
  return h('p', { class: 'muted' }, `${what} at an address that is not shown: ${String(url ?? '').slice(0, 200)}`);
}

function picture(raw, alt) {
  const url = safeUrl(raw, { image: true });
  if (!url) return unsafe(raw, 'A picture');
  if (url.startsWith('data:')) return h('figure', {}, h('img', { alt, class: 'generated', src: url }));
  const img = h('img', { alt, class: 'generated', loading: 'lazy' });
  const link = h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, 'Open image');
  fileBlob(url)
    .then((blob) => {
      if (blob) img.src = blob.url;
      else img.replaceWith(link); // another origin: the CSP keeps its pictures out, a link takes it there
    })
    .catch(() => img.replaceWith(link));
  return h('figure', {}, img);
}

function download(raw) {
  const url = safeUrl(raw);
  if (!url) return unsafe(raw, 'A file');
  const link = h('a', { href: url, class: 'file', download: '' }, 'Download file');
  const box = h('div', { class: 'output-file' }, link);
  fileBlob(url)
    .then((blob) => {
      if (!blob) return;
      if (blob.type.startsWith('image/')) return box.replaceChildren(h('img', { src: blob.url, alt: 'Picture the code made', class: 'generated' }));
      link.href = blob.url;
      link.textContent = `Download file (${blob.type || 'data'}, ${blob.size} bytes)`;
    })
    .catch(() => {});
  return box;
}

function output(type, item) {
  if (item.type === 'logs' || typeof item.logs === 'string') {
    const logs = item.logs || '';
    if (/^https?:\/\/\S+\.(png|jpe?g|gif|webp)$/i.test(logs.trim())) return picture(logs.trim(), 'Output image');
    return h('pre', { class: 'logs', 'aria-label': 'Output' }, logs);
  }
  if (item.type === 'file' || item.file) return download(item.file);
  if (item.image) return picture(item.image, 'Generated image');
  if (item.link || item.title) {
    const href = safeUrl(item.link);
    return h('li', { class: 'source' },
      href ? h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, item.title || item.link) : item.title || item.link,
      item.content ? h('p', { class: 'snippet' }, item.content.slice(0, 300)) : null);
  }
  if (item.text) return h('blockquote', {}, h('p', {}, item.text), item.document ? h('cite', {}, item.document) : null);
  if (item.content) return h('pre', { class: 'logs' }, item.content);
  if (item.error_msg) return h('p', { class: 'error' }, item.error_msg);
  return h('pre', { class: 'logs' }, JSON.stringify(item));
}

function outputsOf(part) {
  const items = part.outputs.map((item) => output(part.type, item));
  const sources = items.filter((el) => el.tagName === 'LI');
  const rest = items.filter((el) => el.tagName !== 'LI');
  return [sources.length ? h('ol', { class: 'sources', 'aria-label': 'Sources' }, sources) : null, rest];
}

function toolElement(part) {
  const label = TOOL_NAMES[part.type] || part.type;
  const el = h('details', { class: ['tool', `tool-${part.type}`], open: true, dataset: { kind: 'tool' } },
    h('summary', {}, h('span', { class: 'tool-name' }, label), h('span', { class: 'tool-state' }, '')),
    h('pre', { class: ['tool-input', part.type === 'code_interpreter' && 'code'] }),
    h('div', { class: 'tool-outputs' }));
  return el;
}

function updateTool(el, part) {
  const input = part.type === 'function' ? `${part.name}(${part.arguments})` : part.input;
  const pre = el.querySelector('.tool-input');
  if (pre.textContent !== input) pre.textContent = input;
  pre.hidden = !input;
  el.querySelector('.tool-state').textContent = part.outputs ? ' · done' : ' · running…';
  const count = part.outputs ? part.outputs.length : 0;
  if (Number(el.dataset.outputs || 0) !== count) {
    el.dataset.outputs = String(count);
    clear(el.querySelector('.tool-outputs'), part.outputs ? outputsOf(part) : null);
  }
}

function updateText(el, part) {
  if (el.dataset.length === String(part.text.length)) return;
  el.dataset.length = String(part.text.length);
  clear(el, renderText(part.text));
}

function citations(turn) {
  return h('ol', { class: 'citations', 'aria-label': 'Citations' },
    turn.citations.map((c) => h('li', { value: c.index },
      h('span', { class: 'cite-doc' }, c.document_name),
      h('q', {}, c.text.length > 240 ? `${c.text.slice(0, 240)}…` : c.text))));
}

export function turnElement() {
  return h('article', { class: 'turn assistant', 'aria-label': 'Answer' },
    h('div', { class: 'parts', 'aria-live': 'polite', 'aria-busy': 'true' }),
    h('div', { class: 'turn-foot' }));
}

export function updateTurn(el, turn) {
  const box = el.querySelector('.parts');
  turn.parts.forEach((part, i) => {
    let child = box.children[i];
    if (!child) {
      child = part.kind === 'text' ? h('div', { class: 'text', dataset: { kind: 'text' } }) : toolElement(part);
      box.append(child);
    }
    if (part.kind === 'text') updateText(child, part);
    else updateTool(child, part);
  });
  const done = turn.status !== 'streaming';
  box.setAttribute('aria-busy', String(!done));
  const foot = el.querySelector('.turn-foot');
  if (done) {
    clear(foot,
      turn.citations.length ? citations(turn) : null,
      turn.error ? h('p', { class: 'error', role: 'alert' }, turn.error) : null,
      turn.usage ? h('small', { class: 'muted usage' }, `${turn.usage.prompt_tokens} + ${turn.usage.completion_tokens} tokens`) : null);
  }
  el.classList.toggle('streaming', !done);
}

export function userElement(text, files = []) {
  return h('article', { class: 'turn user', 'aria-label': 'You' },
    h('p', { class: 'text' }, text),
    files.length ? h('ul', { class: 'attached' }, files.map((f) => h('li', {}, f.filename || f.id))) : null);
}
