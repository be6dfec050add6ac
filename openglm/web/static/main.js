// Boot: find out whether auth is on and who we are, then render the page the hash names.

import { ApiError, api } from './api.js';
import { clear, h } from './dom.js';
import { currentRoute, go } from './router.js';
import { session } from './session.js';

const main = document.getElementById('main');
let rendering = null;
let navigated = false; // the first page of a visit keeps the browser's own focus

// The server says whether keys are needed: /v1/auth/session answers a caller without a key when auth is off and
// refuses it (401) when on. Before that endpoint existed, an /account call without a key that succeeded meant off.
async function probeAuth() {
  const saved = session.key;
  session.key = '';
  try {
    const info = await api('/v1/auth/session');
    session.auth = info.auth;
    session.accountId = info.account_id || '';
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) session.auth = 'on';
    else if (error.status === 404 && error.code === '1222') session.auth = (await worksWithoutKey()) ? 'off' : 'on';
    else throw error;
  } finally {
    session.key = saved;
  }
}

async function worksWithoutKey() {
  try {
    await api('/v1/account');
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

export async function loadAccount() {
  try {
    session.account = await api('/v1/account');
    session.accountId = session.account.id;
    return true;
  } catch (error) {
    session.account = null;
    if (error instanceof ApiError && error.status >= 400 && error.status < 500) return false;
    throw error;
  }
}

function showChrome() {
  const signedIn = session.signedIn();
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('signout').hidden = !(signedIn && session.auth === 'on');
  const who = document.getElementById('who');
  who.textContent = signedIn && session.account ? `${session.account.name} · ¥${session.account.balance}` : '';
}

async function render() {
  let { name, args } = currentRoute();
  if (!session.signedIn() && name !== 'signin') name = 'signin';
  if (session.signedIn() && name === 'signin') name = 'chat';
  showChrome();
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.getAttribute('href') === `#/${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  rendering?.abort();
  const controller = (rendering = new AbortController());
  const focusedBefore = document.activeElement;
  try {
    const page = await import(`./pages/${name}.js`);
    if (controller.signal.aborted) return;
    clear(main);
    await page.render(main, args, controller.signal);
    if (controller.signal.aborted) return; // another page was asked for meanwhile: its render owns the title
    document.title = `${main.querySelector('h1')?.textContent || 'OpenGLM'} · OpenGLM`;
    // A screen reader starts at the new page, not the old link; unless the user has moved focus while the page
    // was loading (a late render must not take focus away from what they are on now).
    const untouched = document.activeElement === focusedBefore || document.activeElement === document.body;
    if (navigated && untouched) main.focus({ preventScroll: true });
    navigated = true;
  } catch (error) {
    if (controller.signal.aborted) return;
    clear(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, error.message));
  }
}

export function refreshChrome() {
  showChrome();
}

export async function signedIn() {
  await loadAccount();
  go('chat');
}

async function boot() {
  document.getElementById('skip').addEventListener('click', (event) => {
    event.preventDefault();
    main.focus();
  });
  document.getElementById('signout').addEventListener('click', async () => {
    try {
      await api('/v1/auth/logout', { method: 'POST' });
    } catch {
      // the endpoint may not exist, or the key is already gone
    }
    session.setKey('');
    session.account = null;
    go('signin');
  });
  window.addEventListener('hashchange', render);
  try {
    await probeAuth();
    if (session.auth === 'off') {
      if (!session.account) await loadAccount();
    } else if (session.key && !(await loadAccount())) {
      session.setKey(''); // a key that no longer works: sign in again
    }
  } catch (error) {
    clear(main, h('h1', {}, 'The server cannot be reached'), h('p', { class: 'error' }, error.message));
    return;
  }
  await render();
}

boot();
