// Sign in with an API key (id.secret) or, where the server has accounts with passwords, email and password.

import { ApiError, api } from '../api.js';
import { field, h } from '../dom.js';
import { loadAccount, signedIn } from '../main.js';
import { session } from '../session.js';

function errorBox() {
  return h('p', { class: 'error', role: 'alert', hidden: true });
}

function fail(box, message) {
  box.hidden = false;
  box.textContent = message;
}

function keyForm() {
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = errorBox();
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'key-title' },
    h('h2', { id: 'key-title' }, 'With an API key'),
    field('API key', input, 'The id.secret key from your console or `openglm keys create`.'),
    error,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    session.setKey(input.value.trim());
    try {
      if (await loadAccount()) return await signedIn();
      session.setKey('');
      fail(error, 'That key was not accepted.');
    } catch (err) {
      session.setKey('');
      fail(error, err.message);
    }
  });
  return form;
}

function passwordForm() {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const error = errorBox();
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'password-title' },
    h('h2', { id: 'password-title' }, 'With your account'),
    field('Email', email),
    field('Password', password),
    error,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const answer = await api('/v1/auth/login', { method: 'POST', body: { email: email.value, password: password.value } });
      session.setKey(answer.key);
      if (await loadAccount()) return await signedIn();
      fail(error, 'The server gave a key that does not work.');
    } catch (err) {
      const missing = err instanceof ApiError && err.status === 404 && err.code === '1222';
      fail(error, missing ? 'This server has no password sign-in; use an API key.' : err.message);
    }
  });
  return form;
}

export async function render(main) {
  main.append(
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'This server needs a key for every call.'),
    h('div', { class: 'columns' }, keyForm(), passwordForm()),
  );
}
