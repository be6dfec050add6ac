// Hash routes: '#/name/arg1/arg2' → the page module 'pages/name.js', rendered into <main>.

const PAGES = new Set(['signin', 'chat', 'agents', 'knowledge', 'finetune', 'evals', 'console', 'playground']);

export function currentRoute() {
  const hash = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
  let parts;
  try {
    parts = hash.split('/').map(decodeURIComponent);
  } catch {
    parts = []; // a malformed escape (#/chat/%): a page that does not exist, so the default one, not a blank page
  }
  const [name = '', ...args] = parts;
  return PAGES.has(name) ? { name, args } : { name: 'chat', args: [] };
}

export function go(path) {
  if (location.hash === `#/${path}`) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = `#/${path}`;
}
