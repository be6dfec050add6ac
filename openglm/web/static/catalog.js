// What one can talk to: the server's models and All Tools agents (/v1/models) and GLMs (own and listed).

import { api } from './api.js';
import { h } from './dom.js';

export async function loadTargets({ glms = true } = {}) {
  const models = (await api('/v1/models')).data;
  const targets = [];
  for (const card of models) {
    const kind = card.kind || (card.id.includes('alltools') ? 'agent' : 'chat');
    if (kind === 'embedding') continue;
    targets.push({ id: card.id, label: card.id, kind });
  }
  if (glms) {
    const seen = new Set();
    const [mine, center] = await Promise.all([api('/v1/glms?size=100'), api('/v1/glms/center?size=100')]);
    for (const glm of [...mine.data, ...center.data]) {
      if (seen.has(glm.id)) continue;
      seen.add(glm.id);
      targets.push({ id: glm.id, label: glm.name, kind: 'glm', glm });
    }
  }
  return targets;
}

// The catalog's default model where it has one (the alias "default"), else the first chat model.
export function defaultTarget(targets) {
  return targets.find((t) => t.id === 'default') || targets.find((t) => t.kind === 'chat') || targets[0];
}

export function targetSelect(targets, selected, kinds = ['chat', 'agent', 'glm']) {
  const groups = { chat: 'Models', agent: 'All Tools agents', glm: 'GLMs' };
  return h('select', { name: 'model' },
    kinds.map((kind) => {
      const items = targets.filter((t) => t.kind === kind);
      if (!items.length) return null;
      return h('optgroup', { label: groups[kind] },
        items.map((t) => h('option', { value: t.id, selected: t.id === selected }, t.label)));
    }));
}
