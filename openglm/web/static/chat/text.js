// Model text as DOM, safely: ``` fences become <pre>, [title](http…) becomes a link; everything else is text.

import { h } from '../dom.js';
import { safeUrl } from '../url.js';

const LINK = /\[([^\]\n]{1,300})\]\((https?:\/\/[^\s)]{1,2000})\)/g;

function inline(text) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    nodes.push(text.slice(at, match.index));
    const href = safeUrl(match[2]);
    nodes.push(href ? h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, match[1]) : match[0]);
    at = match.index + match[0].length;
  }
  nodes.push(text.slice(at));
  return nodes;
}

export function renderText(text) {
  const pieces = text.split(/```/);
  return pieces.map((piece, i) => {
    if (i % 2 === 0) return h('span', { class: 'prose' }, inline(piece));
    const newline = piece.indexOf('\n');
    const code = newline >= 0 ? piece.slice(newline + 1) : piece;
    return h('pre', { class: 'code' }, h('code', {}, code));
  });
}
