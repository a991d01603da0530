// The key browser: prefix search with paging over GET /api/v1/kv, and an
// editor over GET/PUT/DELETE /api/v1/kv/{key}.

import { call } from './api.js';
import { display, escapeBytes, fromField, parseHex, textBytes, textOrNull, toField, toHex } from './bytes.js';

const previewBytes = 60;

export class KeyBrowser {
  constructor(root) {
    this.el = (id) => root.querySelector('#' + id);
    this.starts = []; // start of each page shown so far, for Previous
    this.next = null;
    this.editing = null; // bytes of the key open in the editor
    this.mode = 'text';
    this.el('search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.starts = [];
      this.load(textBytes(this.el('prefix').value));
    });
    this.el('next-page').addEventListener('click', () => this.load(this.next));
    this.el('prev-page').addEventListener('click', () => {
      this.starts.pop();
      this.load(this.starts.pop() ?? textBytes(this.el('prefix').value));
    });
    this.el('new-key').addEventListener('click', () => this.open(null, new Uint8Array()));
    this.el('mode-text').addEventListener('click', () => this.setMode('text'));
    this.el('mode-hex').addEventListener('click', () => this.setMode('hex'));
    this.el('editor-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.save();
    });
    this.el('delete-key').addEventListener('click', () => this.remove());
    this.el('close-editor').addEventListener('click', () => this.close());
  }

  say(text, error = false) {
    const s = this.el('keys-status');
    s.textContent = text;
    s.className = error ? 'status error' : 'status';
  }

  // load shows the page of keys under the prefix from start.
  async load(start) {
    const prefix = textBytes(this.el('prefix').value);
    const limit = this.el('page-size').value;
    const q = `prefix=${escapeBytes(prefix)}&start=${escapeBytes(start)}&limit=${limit}`;
    let page;
    try {
      page = await call('GET', '/api/v1/kv?' + q);
    } catch (err) {
      this.say(`Search failed: ${err.message}`, true);
      return;
    }
    this.starts.push(start);
    this.next = page.next === null ? null : fromField(page.next, page.next_encoding);
    this.el('next-page').disabled = this.next === null;
    this.el('prev-page').disabled = this.starts.length < 2;
    this.render(page.items);
    const n = page.items.length;
    this.say(n === 0 ? 'No keys match.' : `Page ${this.starts.length}: ${n} key${n === 1 ? '' : 's'}${this.next ? ', more on the next page' : ''}.`);
  }

  render(items) {
    const body = this.el('key-rows');
    body.replaceChildren(...items.map((item) => {
      const key = fromField(item.key, item.key_encoding);
      const value = fromField(item.value, item.value_encoding);
      const row = document.createElement('tr');
      const k = display(key);
      const v = display(value.subarray(0, previewBytes));
      const cells = [k.text, v.text + (value.length > previewBytes ? '…' : ''), String(value.length)];
      cells.forEach((text, i) => {
        const td = document.createElement('td');
        td.textContent = text;
        if ((i === 0 && k.binary) || (i === 1 && v.binary)) td.className = 'binary';
        row.append(td);
      });
      row.tabIndex = 0;
      row.dataset.key = k.text;
      const open = () => this.openKey(key);
      row.addEventListener('click', open);
      row.addEventListener('keydown', (ev) => ev.key === 'Enter' && open());
      return row;
    }));
  }

  // openKey reads the key afresh (the page may be old) and opens it.
  async openKey(key) {
    try {
      const got = await call('GET', '/api/v1/kv/' + escapeBytes(key));
      this.open(key, fromField(got.value, got.value_encoding), got.expires_at ?? null);
    } catch (err) {
      this.say(err.status === 404 ? 'That key is gone (deleted or expired since the search).' : `Read failed: ${err.message}`, true);
    }
  }

  // open shows the editor; key null means a new key. expiresAt is the
  // key's expires_at (null when it never expires): the TTL box starts at
  // the remaining seconds rounded up, so saving unchanged keeps about the
  // same expiry instead of silently making the key permanent.
  open(key, value, expiresAt = null) {
    this.editing = key;
    this.value = value;
    const keyInput = this.el('edit-key');
    keyInput.readOnly = key !== null;
    keyInput.value = key === null ? '' : display(key).text;
    this.el('delete-key').hidden = key === null;
    this.el('editor-title').textContent = key === null ? 'New key' : 'Edit key';
    this.showExpiry(key === null ? undefined : expiresAt);
    this.el('editor').hidden = false;
    this.setMode(textOrNull(value) === null ? 'hex' : 'text', true);
    this.sayEditor('');
    (key === null ? keyInput : this.el('edit-value')).focus();
  }

  // showExpiry fills the expiry line and the TTL box: expiresAt undefined
  // for a new key, null for a key without expiry, else its RFC 3339 time.
  showExpiry(expiresAt) {
    const line = this.el('edit-expiry');
    const ttl = this.el('edit-ttl');
    if (expiresAt === undefined) {
      line.textContent = '';
      ttl.value = '';
      return;
    }
    if (expiresAt === null) {
      line.textContent = 'No expiry.';
      ttl.value = '';
      return;
    }
    const at = new Date(expiresAt);
    const left = Math.max(1, Math.ceil((at.getTime() - Date.now()) / 1000));
    line.textContent = `Expires in ${left} s (at ${at.toLocaleString()}).`;
    ttl.value = String(left);
  }

  close() {
    this.el('editor').hidden = true;
    this.editing = null;
  }

  sayEditor(text, error = false) {
    const s = this.el('editor-status');
    s.textContent = text;
    s.className = error ? 'status error' : 'status';
  }

  // currentValue reads the value box in the current mode.
  currentValue() {
    const text = this.el('edit-value').value;
    return this.mode === 'hex' ? parseHex(text) : textBytes(text);
  }

  setMode(mode, fresh = false) {
    let bytes = this.value;
    if (!fresh) {
      try {
        bytes = this.currentValue();
      } catch (err) {
        this.sayEditor(err.message, true);
        return;
      }
    }
    const text = textOrNull(bytes);
    if (mode === 'text' && text === null) {
      this.sayEditor('This value is not valid UTF-8, so it is shown and edited as hex.', true);
      mode = 'hex';
    }
    this.mode = mode;
    this.value = bytes;
    this.el('edit-value').value = mode === 'hex' ? toHex(bytes) : text;
    this.el('mode-text').setAttribute('aria-pressed', String(mode === 'text'));
    this.el('mode-hex').setAttribute('aria-pressed', String(mode === 'hex'));
  }

  async save() {
    let key = this.editing;
    if (key === null) {
      key = textBytes(this.el('edit-key').value);
      if (key.length === 0) {
        this.sayEditor('Give the key a name.', true);
        return;
      }
    }
    let value;
    try {
      value = this.currentValue();
    } catch (err) {
      this.sayEditor(err.message, true);
      return;
    }
    const field = toField(value);
    const body = { value: field.value };
    if (field.encoding) body.value_encoding = field.encoding;
    const ttl = this.el('edit-ttl').value.trim();
    if (ttl !== '') {
      if (!/^[1-9][0-9]*$/.test(ttl)) {
        this.sayEditor('TTL is a whole number of seconds above 0, or empty for no expiry.', true);
        return;
      }
      body.ttl = Number(ttl);
    }
    try {
      await call('PUT', '/api/v1/kv/' + escapeBytes(key), body);
    } catch (err) {
      this.sayEditor(`Save failed: ${err.message}`, true);
      return;
    }
    this.editing = key;
    this.value = value;
    this.el('edit-key').readOnly = true;
    this.el('delete-key').hidden = false;
    this.el('editor-title').textContent = 'Edit key';
    this.showExpiry(ttl ? new Date(Date.now() + Number(ttl) * 1000).toISOString() : null);
    this.sayEditor(`Saved ${value.length} bytes${ttl ? `, expiring in ${ttl} s` : ', no expiry'}.`);
  }

  async remove() {
    const key = this.editing;
    if (key === null || !window.confirm(`Delete the key ${display(key).text}?`)) return;
    try {
      await call('DELETE', '/api/v1/kv/' + escapeBytes(key));
    } catch (err) {
      this.sayEditor(`Delete failed: ${err.message}`, true);
      return;
    }
    this.close();
    this.say(`Deleted ${display(key).text}.`);
    for (const row of this.el('key-rows').children) if (row.dataset.key === display(key).text) row.remove();
  }
}
