// The playground: a model, sampling parameters and messages in; the raw request and the raw response or stream out.

import { authHeaders, errorOf } from '../api.js';
import { clear, field, h } from '../dom.js';
import { defaultTarget, loadTargets, targetSelect } from '../catalog.js';
import { events, rawLine } from '../sse.js';

const ROLES = ['system', 'user', 'assistant'];

function messageRow(role = 'user', content = '') {
  const select = h('select', { 'aria-label': 'Role' }, ROLES.map((r) => h('option', { value: r, selected: r === role }, r)));
  const text = h('textarea', { rows: 2, 'aria-label': 'Content' }, content);
  const row = h('div', { class: 'message-row' }, select,
    h('button', { type: 'button', class: 'quiet small', 'aria-label': 'Remove message', onclick: () => row.remove() }, '×'), text);
  row.read = () => ({ role: select.value, content: text.value });
  return row;
}

function numberInput(name, value, min, max, step) {
  return h('input', { type: 'number', name, value: String(value), min, max, step });
}

// '#/playground/<model>' preselects that model (the fine-tuning page's "Open in playground"), when it is one.
export async function render(main, args) {
  const targets = await loadTargets({ glms: false });
  const wanted = targets.find((t) => t.id === args[0] && t.kind !== 'glm');
  const model = targetSelect(targets, (wanted || defaultTarget(targets))?.id, ['chat', 'agent']);
  const temperature = numberInput('temperature', 0.7, 0, 2, 0.05);
  const topP = numberInput('top_p', 0.9, 0, 1, 0.05);
  const maxTokens = numberInput('max_tokens', 128, 1, 8192, 1);
  const stream = h('input', { type: 'checkbox', name: 'stream', checked: true });
  const rows = h('div', { class: 'messages' }, messageRow('system', 'You are a helpful assistant.'), messageRow('user', 'Say hello.'));
  const requestView = h('pre', { class: 'raw request', 'aria-label': 'Request' });
  const responseView = h('pre', { class: 'raw response', 'aria-label': 'Response', 'aria-live': 'polite' });
  const answerView = h('div', { class: 'text answer' });
  const run = h('button', { type: 'submit' }, 'Run');

  const body = () => {
    const agent = targets.find((t) => t.id === model.value)?.kind === 'agent';
    const messages = [...rows.children].map((r) => r.read()).filter((m) => m.content);
    const request = {
      model: model.value,
      messages: agent ? messages.map((m) => (m.role === 'user' ? { ...m, content: [{ type: 'text', text: m.content }] } : m)) : messages,
      temperature: Number(temperature.value), top_p: Number(topP.value), max_tokens: Number(maxTokens.value),
      stream: agent || stream.checked,
    };
    if (agent) request.tools = [{ type: 'code_interpreter' }];
    return request;
  };
  const show = () => { requestView.textContent = `POST /v1/chat/completions\n${JSON.stringify(body(), null, 2)}`; };

  const form = h('form', { class: 'card', 'aria-labelledby': 'pg-params', oninput: show, onchange: show }, h('h2', { id: 'pg-params' }, 'Parameters'),
    field('Model', model), field('Temperature', temperature), field('Top p', topP), field('Max tokens', maxTokens),
    h('label', {}, stream, ' Stream'),
    h('h2', {}, 'Messages'), rows,
    h('div', { class: 'row' }, h('button', { type: 'button', class: 'quiet', onclick: () => { rows.append(messageRow()); show(); } }, 'Add message'), h('span', { class: 'grow' }), run));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const request = body();
    show();
    clear(responseView);
    clear(answerView);
    run.disabled = true;
    try {
      const response = await fetch('/v1/chat/completions', { method: 'POST', headers: authHeaders({ 'Content-Type': 'application/json' }), body: JSON.stringify(request) });
      const status = `HTTP ${response.status} ${response.headers.get('content-type') || ''}\n`;
      if (!response.ok) {
        const error = await errorOf(response);
        responseView.textContent = `${status}${JSON.stringify({ error: { code: error.code, message: error.message } }, null, 2)}`;
      } else if (request.stream) {
        responseView.textContent = status;
        for await (const chunk of events(response)) {
          responseView.textContent += `${rawLine(chunk)}\n`;
          answerView.textContent += chunk.choices?.[0]?.delta?.content || '';
        }
        responseView.textContent += 'data: [DONE]\n';
      } else {
        const json = await response.json();
        responseView.textContent = `${status}${JSON.stringify(json, null, 2)}`;
        answerView.textContent = json.choices?.[0]?.message?.content || '';
      }
    } catch (error) {
      responseView.textContent += `\n${error.message}`;
    }
    run.disabled = false;
  });
  main.append(h('h1', {}, 'Playground'), h('div', { class: 'playground' }, form,
    h('div', {}, h('section', { class: 'card', 'aria-labelledby': 'pg-answer' }, h('h2', { id: 'pg-answer' }, 'Answer'), answerView),
      h('section', { class: 'card', 'aria-labelledby': 'pg-req' }, h('h2', { id: 'pg-req' }, 'Raw request'), requestView),
      h('section', { class: 'card', 'aria-labelledby': 'pg-res' }, h('h2', { id: 'pg-res' }, 'Raw response'), responseView))));
  show();
}
