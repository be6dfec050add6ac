// Conversations kept in this browser (any model), per account; the Assistant API's stored conversations are
// listed from the server where it has them.

import { api, probe } from '../api.js';
import { session } from '../session.js';

const LIMIT = 50;

function storageKey() {
  return `openglm.chats.${session.accountId || 'local'}`;
}

export function localChats() {
  try {
    return JSON.parse(localStorage.getItem(storageKey()) || '[]');
  } catch {
    return [];
  }
}

export function saveChat(chat) {
  const chats = localChats().filter((c) => c.id !== chat.id);
  chat.updated = Date.now();
  chats.unshift(chat);
  try {
    localStorage.setItem(storageKey(), JSON.stringify(chats.slice(0, LIMIT)));
  } catch {
    // storage full: the conversation still works, it is just not kept
  }
}

export function deleteChat(id) {
  localStorage.setItem(storageKey(), JSON.stringify(localChats().filter((c) => c.id !== id)));
}

export function newChat(target) {
  return { id: `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, title: '', target, conversationId: '', messages: [], turns: [] };
}

let assistantApi = null;

export async function hasAssistantApi() {
  if (assistantApi === null) assistantApi = await probe('/v1/assistant/conversations?page=1&size=1');
  return assistantApi;
}

export async function serverChats() {
  if (!(await hasAssistantApi())) return [];
  const page = await api('/v1/assistant/conversations?page=1&size=30');
  return page.data || [];
}

// A stored conversation in the shape the chat page draws: user texts and assistant turns with tool parts.
export async function serverChat(id) {
  const conversation = await api(`/v1/assistant/conversations/${encodeURIComponent(id)}`);
  const turns = [];
  for (const message of conversation.messages || []) {
    if (message.role === 'user') {
      const text = Array.isArray(message.content) ? message.content.map((c) => c.text || '').join('') : message.content;
      turns.push({ role: 'user', text, files: [] });
      continue;
    }
    const last = turns[turns.length - 1];
    const turn = last && last.role === 'assistant' ? last.turn : { role: 'assistant', parts: [], status: 'completed', usage: null, citations: [], error: '', ids: {} };
    if (!last || last.role !== 'assistant') turns.push({ role: 'assistant', turn });
    for (const call of message.tool_calls || []) {
      turn.parts.push({ kind: 'tool', type: call.type, id: '', input: call.input || '', name: call.name || '', arguments: call.type === 'function' ? call.input || '' : '', outputs: call.outputs || [] });
    }
    if (message.content) turn.parts.push({ kind: 'text', text: typeof message.content === 'string' ? message.content : JSON.stringify(message.content) });
  }
  return {
    id: `s${conversation.id}`,
    title: conversation.title,
    target: conversation.assistant_id,
    conversationId: conversation.id,
    messages: [],
    turns,
    server: true,
  };
}
