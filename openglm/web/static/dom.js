// The only way pages build DOM: elements from tags, properties and children; text always goes in as text nodes.
// There is no path from a string to markup here (no innerHTML), so model output can never become HTML.

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'multiple', 'indeterminate']);
const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'style' || key === 'innerHTML' || key === 'outerHTML') throw new Error(`refused property ${key}`);
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

export function svg(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let fieldCount = 0;

// A labelled form control: <label for> + control, optionally a hint tied by aria-describedby.
export function field(label, control, hint) {
  const id = control.id || `f${++fieldCount}`;
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('small', { id: hintId, class: 'hint' }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toast');
  clear(box, h('p', { class: kind }, message));
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.replaceChildren(), 6000);
}

export function formatTime(seconds) {
  if (!seconds) return '';
  const date = new Date(typeof seconds === 'number' ? (seconds > 1e12 ? seconds : seconds * 1000) : seconds);
  return date.toLocaleString();
}
