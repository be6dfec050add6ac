// Agents: the agent center (listed GLMs, search, use), my agents, and the editor (form + builder chat).

import { api, probePost } from '../api.js';
import { barChart } from '../chart.js';
import { clear, field, h, toast } from '../dom.js';
import { go } from '../router.js';

function agentCard(glm) {
  return h('li', { class: 'card agent', dataset: { id: glm.id } },
    h('h3', {}, glm.name),
    h('p', {}, glm.description || h('span', { class: 'muted' }, 'No description.')),
    h('small', { class: 'muted' }, [`${glm.uses} uses`, glm.tools.length ? glm.tools.join(', ') : 'no tools', glm.mine ? glm.visibility : ''].filter(Boolean).join(' · ')),
    h('div', { class: 'row' },
      h('a', { class: 'button', href: `#/chat/new/${encodeURIComponent(glm.id)}`, 'aria-label': `Use ${glm.name}` }, 'Use'),
      glm.mine ? h('a', { class: 'button quiet', href: `#/agents/edit/${encodeURIComponent(glm.id)}`, 'aria-label': `Edit ${glm.name}` }, 'Edit') : null));
}

async function centerPage(main) {
  const search = h('input', { type: 'search', name: 'q', placeholder: 'Search by name or description' });
  const grid = h('ul', { class: 'agent-grid', 'aria-live': 'polite' });
  const load = async () => {
    const page = await api(`/v1/glms/center?size=60${search.value ? `&q=${encodeURIComponent(search.value)}` : ''}`);
    clear(grid, page.data.length ? page.data.map(agentCard) : h('li', { class: 'muted' }, 'No listed agents match.'));
  };
  let timer = 0;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(load, 250); });
  const mine = await api('/v1/glms?size=100');
  main.append(h('div', { class: 'row' }, h('h1', { class: 'grow' }, 'Agents'), h('a', { class: 'button', href: '#/agents/new' }, 'Create an agent')),
    h('section', { 'aria-labelledby': 'center-title' }, h('h2', { id: 'center-title' }, 'Agent center'),
      h('form', { role: 'search', onsubmit: (e) => { e.preventDefault(); load(); } }, field('Search agents', search)), grid),
    h('section', { 'aria-labelledby': 'mine-title' }, h('h2', { id: 'mine-title' }, 'My agents'),
      h('ul', { class: 'agent-grid mine' }, mine.data.length ? mine.data.map(agentCard) : h('li', { class: 'muted' }, 'You have not made an agent yet.'))));
  await load();
}

const TOOLS = [
  ['code_interpreter', 'Code interpreter'],
  ['web_browser', 'Web browser'],
  ['drawing_tool', 'Drawing'],
  ['retrieval', 'Knowledge retrieval'],
];

// A model list in two groups: the server's models, then the account's own fine-tuned ones ("ft:…", private to it),
// which an agent may run on too.
function modelOptions(models, selected) {
  const option = (m) => h('option', { value: m, selected: m === selected }, m);
  const tuned = models.filter((m) => m.startsWith('ft:'));
  const served = models.filter((m) => !m.startsWith('ft:'));
  if (!tuned.length) return served.map(option);
  return [h('optgroup', { label: 'Models' }, served.map(option)), h('optgroup', { label: 'Fine-tuned models' }, tuned.map(option))];
}

// The editor's form: fill(draft) puts a {name, description, config} in, read() takes one out.
function agentForm(models, bases) {
  const name = h('input', { name: 'name', required: true, maxlength: 100 });
  const description = h('input', { name: 'description', maxlength: 1000 });
  const instructions = h('textarea', { name: 'instructions', rows: 6, maxlength: 8000 });
  const model = h('select', { name: 'model' }, modelOptions(models));
  const tools = TOOLS.map(([value, label]) => h('input', { type: 'checkbox', name: 'tools', value, 'aria-label': label }));
  const kbs = bases.map((kb) => h('input', { type: 'checkbox', name: 'knowledge', value: kb.id, 'aria-label': kb.name }));
  const starters = h('textarea', { name: 'starters', rows: 3 });
  const visibility = h('select', { name: 'visibility' },
    [['private', 'Private (only me)'], ['link', 'Anyone with the link'], ['listed', 'Listed in the agent center']].map(([v, l]) => h('option', { value: v }, l)));
  const form = h('form', { class: 'card agent-form', 'aria-labelledby': 'form-title' },
    h('h2', { id: 'form-title' }, 'Configuration'),
    field('Name', name), field('Description', description),
    field('Instructions', instructions, 'What the agent is for and how it should answer; placed first in its system prompt.'),
    field('Model', model),
    h('fieldset', { class: 'inline' }, h('legend', {}, 'Tools'), tools.map((box, i) => h('label', {}, box, ` ${TOOLS[i][1]}`))),
    h('fieldset', { class: 'inline' }, h('legend', {}, 'Knowledge bases'),
      kbs.length ? kbs.map((box, i) => h('label', {}, box, ` ${bases[i].name}`)) : h('span', { class: 'muted' }, 'None yet.')),
    field('Starter prompts', starters, 'One per line, up to six.'),
    field('Visibility', visibility),
    h('button', { type: 'submit' }, 'Save'));
  form.fill = (draft) => {
    const config = draft.config || {};
    if (draft.name != null) name.value = draft.name;
    if (draft.description != null) description.value = draft.description;
    if (draft.visibility) visibility.value = draft.visibility;
    instructions.value = config.instructions || '';
    if (config.model) {
      if (!models.includes(config.model)) model.append(h('option', { value: config.model }, config.model));
      model.value = config.model;
    }
    for (const box of tools) box.checked = (config.tools || []).includes(box.value);
    for (const box of kbs) box.checked = (config.knowledge_ids || []).includes(box.value);
    starters.value = (config.starter_prompts || []).join('\n');
  };
  form.read = () => ({
    name: name.value.trim(),
    description: description.value.trim(),
    visibility: visibility.value,
    config: {
      instructions: instructions.value,
      model: model.value,
      tools: tools.filter((b) => b.checked).map((b) => b.value),
      knowledge_ids: kbs.filter((b) => b.checked).map((b) => b.value),
      starter_prompts: starters.value.split('\n').map((s) => s.trim()).filter(Boolean),
      ...(form.httpApis ? { http_apis: form.httpApis } : {}),
    },
  });
  return form;
}

function builderPanel(form, models) {
  const log = h('div', { class: 'builder-log', 'aria-live': 'polite' },
    h('p', {}, 'Describe the agent you want — what it is for, how it should answer, what tools it needs. I will fill in the form; you can edit it at any time.'));
  const input = h('textarea', { name: 'describe', rows: 3, required: true });
  const builderModel = h('select', { name: 'builder_model' }, modelOptions(models, 'default'));
  const button = h('button', { type: 'submit' }, 'Send');
  const messages = [];
  const panel = h('form', { class: 'card builder', 'aria-labelledby': 'builder-title' },
    h('h2', { id: 'builder-title' }, 'Create by conversation'), log, field('Describe your agent', input),
    h('div', { class: 'row' }, button, h('span', { class: 'grow' }), field('Builder model', builderModel)));
  panel.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    messages.push({ role: 'user', content: text });
    log.append(h('p', { class: 'mine' }, text));
    input.value = '';
    button.disabled = true;
    try {
      const draft = form.read();
      const answer = await api('/v1/glms/builder', { method: 'POST', body: { messages, model: builderModel.value, draft: draft.name || draft.config.instructions ? { name: draft.name, description: draft.description, config: draft.config } : null } });
      messages.push({ role: 'assistant', content: answer.reply });
      log.append(h('p', { class: 'reply' }, answer.reply));
      form.fill(answer.draft);
    } catch (error) {
      log.append(h('p', { class: 'error' }, error.message));
    }
    button.disabled = false;
    log.scrollTop = log.scrollHeight;
  });
  return panel;
}

async function versionsCard(id) {
  const versions = await api(`/v1/glms/${encodeURIComponent(id)}/versions`);
  return h('section', { class: 'card', 'aria-labelledby': 'versions-title' }, h('h2', { id: 'versions-title' }, 'Versions'),
    h('ol', { reversed: true, class: 'versions' }, versions.data.map((v) => h('li', { value: v.version },
      `Version ${v.version} · ${new Date(v.created_at * 1000).toLocaleString()} · ${v.config.model} · ${v.config.tools.join(', ') || 'no tools'}`))));
}

async function usageCard(id) {
  try {
    const usage = await api(`/v1/glms/${encodeURIComponent(id)}/usage`);
    const days = (usage.by_day || []).slice().sort((a, b) => String(a.day ?? a.group).localeCompare(String(b.day ?? b.group)));
    return h('section', { class: 'card', 'aria-labelledby': 'glm-usage-title' }, h('h2', { id: 'glm-usage-title' }, 'Usage of this agent'),
      h('table', { class: 'glm-usage' }, h('tbody', {}, [['Calls', usage.calls], ['Prompt tokens', usage.prompt_tokens], ['Completion tokens', usage.completion_tokens], ['Cost', usage.cost], ['Earnings', usage.earnings]]
        .map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { class: 'num' }, String(v ?? '—')))))),
      days.length ? barChart(days, { title: 'Calls per day', valueOf: (d) => Number(d.calls ?? d.requests ?? 0), labelOf: (d) => String(d.day ?? d.group).slice(5) }) : null);
  } catch {
    return null; // not on this server yet
  }
}

async function editorPage(main, id) {
  const [models, bases, builder, existing] = await Promise.all([
    api('/v1/models').then((r) => r.data.filter((m) => (m.kind || 'chat') === 'chat').map((m) => m.id)),
    api('/v1/knowledge?size=100').then((r) => r.list).catch(() => []),
    probePost('/v1/glms/builder'),
    id ? api(`/v1/glms/${encodeURIComponent(id)}`) : null,
  ]);
  const form = agentForm(models, bases);
  const status = h('p', { 'aria-live': 'polite', class: 'muted' });
  if (existing) {
    form.fill({ ...existing, config: existing.config });
    form.httpApis = existing.config?.http_apis;
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const draft = form.read();
    try {
      const saved = id
        ? await api(`/v1/glms/${encodeURIComponent(id)}`, { method: 'PUT', body: draft })
        : await api('/v1/glms', { method: 'POST', body: draft });
      toast(`Saved ${saved.name} (version ${saved.version}).`);
      go(`agents/edit/${saved.id}`);
    } catch (error) {
      status.textContent = error.message;
      status.className = 'error';
    }
  });
  const side = [];
  if (!id && builder) side.push(builderPanel(form, models));
  if (id) {
    side.push(h('div', { class: 'card' }, h('a', { class: 'button', href: `#/chat/new/${encodeURIComponent(id)}` }, 'Chat with this agent'),
      ' ', h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!confirm('Delete this agent?')) return;
        await api(`/v1/glms/${encodeURIComponent(id)}`, { method: 'DELETE' });
        go('agents');
      } }, 'Delete')));
    side.push(await versionsCard(id));
    side.push(await usageCard(id));
  }
  main.append(h('p', {}, h('a', { href: '#/agents' }, '← Agents')),
    h('h1', {}, existing ? `Edit ${existing.name}` : 'Create an agent'),
    h('div', { class: 'editor' }, h('div', {}, form, status), h('div', {}, side)));
}

export async function render(main, args) {
  if (args[0] === 'new') return editorPage(main, '');
  if (args[0] === 'edit' && args[1]) return editorPage(main, args[1]);
  return centerPage(main);
}
