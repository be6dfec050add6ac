// Who is signed in: an API key kept in localStorage, or nothing when the server runs with auth off.

const KEY = 'openglm.key';

export const session = {
  key: localStorage.getItem(KEY) || '',
  auth: 'unknown', // 'on' | 'off' once probed
  accountId: '',
  account: null,

  setKey(key) {
    this.key = key;
    if (key) localStorage.setItem(KEY, key);
    else localStorage.removeItem(KEY);
  },

  signedIn() {
    return this.auth === 'off' || Boolean(this.key && this.account);
  },
};
