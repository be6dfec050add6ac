// Calls to the platform API with the session's key; errors in the platform's format become ApiError.

import { session } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function authHeaders(extra = {}) {
  return session.key ? { ...extra, Authorization: `Bearer ${session.key}` } : extra;
}

export async function errorOf(response) {
  let code = '';
  let message = `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code = '', message = message } = body.error);
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, String(code), message);
}

// fetch with the key; JSON in and out. `raw: true` returns the Response (for streams).
export async function api(path, { method = 'GET', body, signal, raw = false } = {}) {
  const init = { method, headers: authHeaders(), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// Is an endpoint there yet? (404 with the platform's "unknown path" means no.)
export async function probe(path) {
  try {
    await api(path);
    return true;
  } catch (error) {
    return !(error instanceof ApiError && ((error.status === 404 && error.code === '1222') || error.status === 405));
  }
}

// Is a POST endpoint there? Sent a body it must refuse: any answer but "no such path/method" means yes.
export async function probePost(path) {
  try {
    await api(path, { method: 'POST', body: {} });
    return true;
  } catch (error) {
    return !(error instanceof ApiError && ((error.status === 404 && error.code === '1222') || error.status === 405));
  }
}

// A multipart upload through XMLHttpRequest, for its upload progress events.
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // leave null
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body?.error?.code ?? '', body?.error?.message ?? `HTTP ${xhr.status}`));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, '', 'network error')));
    xhr.send(form);
  });
}

const blobs = new Map();

// A same-origin API file (which needs the key) as an object URL, with its type; other origins are not fetched.
export async function fileBlob(url) {
  const target = new URL(url, location.href);
  if (target.origin !== location.origin) return null;
  if (!blobs.has(target.href)) {
    blobs.set(
      target.href,
      fetch(target.href, { headers: authHeaders() }).then(async (response) => {
        if (!response.ok) throw await errorOf(response);
        const blob = await response.blob();
        return { url: URL.createObjectURL(blob), type: blob.type, size: blob.size };
      }),
    );
  }
  return blobs.get(target.href);
}
