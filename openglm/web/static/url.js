// The one check for a URL from the server or a model before it lands in an href or a src: http:, https:, blob:
// and paths on this origin (they resolve to it); data: only for a picture, and only a raster one. Anything else
// (javascript:, vbscript:, data:text/html, a string that is not a URL) is null: show it as text, or not at all.

const SCHEMES = new Set(['http:', 'https:', 'blob:']);
const PICTURE_DATA = /^data:image\/(png|jpeg|gif|webp)[;,]/i;

export function safeUrl(value, { image = false } = {}) {
  if (typeof value !== 'string' || !value.trim()) return null;
  const text = value.trim();
  let url;
  try {
    url = new URL(text, globalThis.location?.href);
  } catch {
    return null;
  }
  if (SCHEMES.has(url.protocol)) return url.href;
  if (image && url.protocol === 'data:' && PICTURE_DATA.test(text)) return text;
  return null;
}
