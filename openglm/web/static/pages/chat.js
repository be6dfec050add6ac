// Chat with a model, an All Tools agent or a GLM: streaming answers, tool panels, attachments, history.

import { api, upload } from '../api.js';
import { clear, field, formatTime, h, toast } from '../dom.js';
import { go } from '../router.js';
import { events } from '../sse.js';
import { defaultTarget, loadTargets, targetSelect } from '../catalog.js';
import { applyChunk, finish, newTurn, turnText } from '../chat/transcript.js';
import { turnElement, updateTurn, userElement } from '../chat/render.js';
import { deleteChat, hasAssistantApi, localChats, newChat, saveChat, serverChat, serverChats } from '../chat/history.js';

const BUILTINS = [
  ['code_interpreter', 'Code interpreter', true],
  ['web_browser', 'Web browser', false],
  ['drawing_tool', 'Drawing', false],
];

function userContent(text) {
  return [{ type: 'text', text }];
}

// The request for one turn, and where it goes: the Assistant API for agents where the server has it, else
// chat completions (plain, with a knowledge base, or in the glm-4-alltools format).
function buildRequest(state, text) {
  const { chat, target, useAssistant } = state;
  if (target.kind !== 'chat' && useAssistant) {
    const body = { assistant_id: target.id, stream: true, messages: [{ role: 'user', content: userContent(text) }] };
    if (chat.conversationId) body.conversation_id = chat.conversationId;
    if (state.files.length) body.attachments = state.files.map((f) => ({ file_id: f.id }));
    body.max_tokens = 1024; // OpenGLM's extension: per model round, so a small model ends its turn
    return { path: '/v1/assistant', body };
  }
  const agent = target.kind !== 'chat';
  const messages = [...chat.messages, { role: 'user', content: agent ? userContent(text) : text }];
  const body = { model: target.id, stream: true, messages };
  if (agent) {
    if (chat.conversationId) body.conversation_id = chat.conversationId;
    if (target.kind === 'agent') {
      body.tools = state.tools.map((type) => ({ type }));
      const code = body.tools.find((t) => t.type === 'code_interpreter');
      if (code && state.files.length) code.code_interpreter = { file_ids: state.files.map((f) => f.id) };
    }
  } else {
    body.stream_options = { include_usage: true };
    body.max_tokens = 1024; // a small model can ramble; a chat turn stays readable
    if (state.knowledgeId) body.tools = [{ type: 'retrieval', retrieval: { knowledge_id: state.knowledgeId } }];
  }
  return { path: '/v1/chat/completions', body };
}

async function send(state, text) {
  const { chat, transcript } = state;
  const files = state.files.slice();
  chat.turns.push({ role: 'user', text, files });
  transcript.append(userElement(text, files));
  const { path, body } = buildRequest(state, text);
  const turn = newTurn();
  const el = turnElement();
  transcript.append(el);
  el.scrollIntoView({ block: 'end' });
  state.controller = new AbortController();
  state.setBusy(true);
  try {
    const response = await api(path, { method: 'POST', body, raw: true, signal: state.controller.signal });
    for await (const chunk of events(response)) {
      applyChunk(turn, chunk);
      updateTurn(el, turn);
    }
  } catch (error) {
    turn.error = error.name === 'AbortError' ? 'Stopped.' : error.message;
  }
  finish(turn);
  updateTurn(el, turn);
  chat.conversationId = turn.ids.conversation_id || chat.conversationId;
  chat.messages.push({ role: 'user', content: body.messages ? body.messages[body.messages.length - 1].content : text });
  chat.messages.push({ role: 'assistant', content: turnText(turn) });
  chat.turns.push({ role: 'assistant', turn });
  chat.title = chat.title || text.slice(0, 60);
  state.files = [];
  state.showFiles();
  if (state.target.kind !== 'chat' && state.useAssistant && chat.conversationId) {
    chat.server = true; // the server keeps this one; the history lists it under the server's id
    chat.id = `s${chat.conversationId}`;
    if (!turn.error) el.querySelector('.turn-foot').append(suggestButton(state, chat));
  }
  if (!chat.server) saveChat(chat);
  state.setBusy(false);
  state.refreshHistory();
}

// Follow-up questions the server proposes for a stored conversation (one short model call, on request).
function suggestButton(state, chat) {
  const box = h('div', { class: 'starters suggestions', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'quiet small', onclick: async () => {
    button.disabled = true;
    try {
      const answer = await api('/v1/assistant/conversation/suggest', { method: 'POST', body: { assistant_id: chat.target, conversation_id: chat.conversationId } });
      clear(box, (answer.suggest_list || []).map((text) => h('button', { type: 'button', class: 'quiet', onclick: () => state.submit(text) }, text)));
    } catch (error) {
      clear(box, h('p', { class: 'error' }, error.message));
    }
  } }, 'Suggest follow-ups');
  box.append(button);
  return box;
}

function historyList(state) {
  const list = h('ul', { class: 'history-list' });
  const fill = async () => {
    const local = localChats();
    const server = await serverChats().catch(() => []);
    const item = (id, title, when, open, remove) =>
      h('li', { class: id === state.chat.id ? 'current' : '' },
        h('a', { href: '#/chat', onclick: (e) => { e.preventDefault(); open(); } }, title || 'Untitled'),
        h('small', { class: 'muted' }, formatTime(when)),
        remove ? h('button', { type: 'button', class: 'quiet small', 'aria-label': `Delete ${title}`, onclick: remove }, '×') : null);
    clear(list,
      local.map((c) => item(c.id, c.title, c.updated, () => state.open(c), () => { deleteChat(c.id); fill(); })),
      server.map((c) => item(`s${c.id}`, c.title, c.updated_at, async () => state.open(await serverChat(c.id)), async () => {
        await api(`/v1/assistant/conversations/${encodeURIComponent(c.id)}`, { method: 'DELETE' });
        fill();
      })));
    if (!local.length && !server.length) list.append(h('li', { class: 'muted' }, 'No conversations yet.'));
  };
  state.refreshHistory = fill;
  fill();
  return list;
}

function drawChat(state) {
  clear(state.transcript);
  for (const entry of state.chat.turns) {
    if (entry.role === 'user') state.transcript.append(userElement(entry.text, entry.files || []));
    else {
      const el = turnElement();
      updateTurn(el, entry.turn);
      state.transcript.append(el);
    }
  }
  if (!state.chat.turns.length && state.target?.glm) {
    const prompts = state.target.glm.starter_prompts || [];
    state.transcript.append(h('div', { class: 'starters' },
      h('p', {}, state.target.glm.description || state.target.label),
      prompts.map((p) => h('button', { type: 'button', class: 'quiet', onclick: () => state.submit(p) }, p))));
  }
}

export async function render(main, args) {
  const [knowledge, targets, useAssistant] = await Promise.all([
    api('/v1/knowledge?size=100').catch(() => ({ list: [] })),
    loadTargets(),
    hasAssistantApi(),
  ]);
  const wanted = args[0] === 'new' ? args[1] : '';
  const state = { files: [], tools: BUILTINS.filter((b) => b[2]).map((b) => b[0]), knowledgeId: '', useAssistant, controller: null };
  state.target = targets.find((t) => t.id === wanted) || defaultTarget(targets);
  state.chat = newChat(state.target?.id);

  const picker = targetSelect(targets, state.target?.id);
  const toolBoxes = h('fieldset', { class: 'inline' }, h('legend', {}, 'Tools'),
    BUILTINS.map(([type, label, on]) => h('label', {},
      h('input', { type: 'checkbox', value: type, checked: on, onchange: (e) => {
        state.tools = e.target.checked ? [...state.tools, type] : state.tools.filter((t) => t !== type);
      } }), ` ${label}`)));
  const kbSelect = h('select', { onchange: (e) => { state.knowledgeId = e.target.value; } },
    h('option', { value: '' }, 'None'), knowledge.list.map((kb) => h('option', { value: kb.id }, kb.name)));
  const kbField = field('Answer from knowledge base', kbSelect);
  const fileInput = h('input', { type: 'file', class: 'visually-hidden', id: 'attach' });
  const attachLabel = h('label', { for: 'attach', class: 'button quiet' }, 'Attach file');
  const fileList = h('ul', { class: 'attached', 'aria-live': 'polite' });
  const textarea = h('textarea', { rows: 3, name: 'prompt', required: true, placeholder: 'Message (Enter sends, Shift+Enter for a new line)' });
  const sendButton = h('button', { type: 'submit' }, 'Send');
  const stopButton = h('button', { type: 'button', class: 'quiet', hidden: true, onclick: () => state.controller?.abort() }, 'Stop');
  state.transcript = h('section', { class: 'transcript', 'aria-label': 'Conversation' });

  const adapt = () => {
    const kind = state.target?.kind;
    toolBoxes.hidden = kind !== 'agent' || useAssistant;
    kbField.hidden = kind !== 'chat';
    attachLabel.hidden = kind === 'chat';
    fileInput.disabled = kind === 'chat';
  };
  state.setBusy = (busy) => {
    sendButton.disabled = busy;
    stopButton.hidden = !busy;
    picker.disabled = busy || state.chat.turns.length > 0;
  };
  state.showFiles = () => clear(fileList, state.files.map((f) => h('li', {}, f.filename)));
  state.open = (chat) => {
    state.chat = chat;
    state.target = targets.find((t) => t.id === chat.target) || { id: chat.target, label: chat.target, kind: 'agent' };
    picker.value = state.target.id;
    adapt();
    drawChat(state);
    state.setBusy(false);
    state.refreshHistory();
  };
  state.submit = (text) => {
    if (!text.trim() || sendButton.disabled) return;
    textarea.value = '';
    send(state, text.trim());
  };

  picker.addEventListener('change', () => {
    state.target = targets.find((t) => t.id === picker.value);
    state.chat = newChat(state.target.id);
    adapt();
    drawChat(state);
  });
  fileInput.addEventListener('change', async () => {
    const file = fileInput.files[0];
    if (!file) return;
    const form = new FormData();
    form.append('file', file);
    form.append('purpose', useAssistant ? 'assistant' : 'code-interpreter');
    try {
      const stored = await upload('/v1/files', form, () => {});
      state.files.push({ id: stored.id, filename: stored.filename });
      state.showFiles();
    } catch (error) {
      toast(error.message, 'error');
    }
    fileInput.value = '';
  });
  textarea.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      state.submit(textarea.value);
    }
  });
  const composer = h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); state.submit(textarea.value); } },
    field('Message', textarea), h('div', { class: 'row' }, fileInput, attachLabel, fileList, h('span', { class: 'grow' }), stopButton, sendButton));

  main.append(h('div', { class: 'chat-layout' },
    h('aside', { class: 'history', 'aria-label': 'Conversations' },
      h('button', { type: 'button', onclick: () => go('chat') }, 'New chat'),
      h('h2', {}, 'History'), historyList(state)),
    h('section', { class: 'chat-main' },
      h('h1', { class: 'visually-hidden' }, 'Chat'),
      h('div', { class: 'controls' }, field('Talk to', picker), toolBoxes, kbField),
      state.transcript, composer)));
  adapt();
  drawChat(state);
  state.setBusy(false);
  if (!targets.length) toast('This server has no chat models loaded.', 'error');
}
