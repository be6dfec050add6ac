// Hash routes: '#/name/arg1/arg2' → the page module 'pages/name.js', rendered into <main>.

const PAGES = new Set(['signin', 'chat', 'agents', 'knowledge', 'console', 'playground']);

export function currentRoute() {
  const hash = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
  const [name = '', ...args] = hash.split('/').map(decodeURIComponent);
  return { name: PAGES.has(name) ? name : 'chat', args };
}

export function go(path) {
  if (location.hash === `#/${path}`) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = `#/${path}`;
}
