// Keys and values are bytes. The HTTP API carries bytes that are not valid
// UTF-8 as base64 with a sibling "*_encoding": "base64" field; these
// functions move between that form, text, hex, and URL escapes.

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// fromField returns the bytes of a JSON field and its encoding field.
export function fromField(value, encoding) {
  return encoding === 'base64' ? fromBase64(value) : utf8.encode(value);
}

// toField returns the JSON form of bytes: text when they are UTF-8, else
// base64 with encoding set.
export function toField(bytes) {
  const text = textOrNull(bytes);
  return text === null ? { value: toBase64(bytes), encoding: 'base64' } : { value: text, encoding: '' };
}

// textOrNull decodes UTF-8, or answers null when the bytes are not UTF-8.
export function textOrNull(bytes) {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

export function textBytes(text) {
  return utf8.encode(text);
}

export function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

export function fromBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const hexDigits = '0123456789abcdef';

// toHex writes bytes as hex pairs, 16 to a line, separated by spaces.
export function toHex(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const pairs = [];
    for (const b of bytes.subarray(i, i + 16)) pairs.push(hexDigits[b >> 4] + hexDigits[b & 15]);
    lines.push(pairs.join(' '));
  }
  return lines.join('\n');
}

// parseHex reads hex pairs, ignoring whitespace; it throws an Error that
// says what is wrong, for the editor to show.
export function parseHex(text) {
  const digits = text.replace(/\s+/g, '');
  if (/[^0-9a-fA-F]/.test(digits)) {
    const bad = digits.match(/[^0-9a-fA-F]/)[0];
    throw new Error(`"${bad}" is not a hex digit: write bytes as pairs like 6d 61`);
  }
  if (digits.length % 2 !== 0) throw new Error('odd number of hex digits: every byte takes two');
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// escapeBytes percent-encodes every byte outside the unreserved set, so a
// key becomes exactly one path segment (a "/" or "." inside it included)
// and any bytes survive a query string.
export function escapeBytes(bytes) {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_~-]/.test(c) ? c : '%' + hexDigits[b >> 4].toUpperCase() + hexDigits[b & 15].toUpperCase();
  }
  return out;
}

// displayText shows bytes as text when they are printable UTF-8, else as
// hex with a 0x prefix; binary is false for text.
export function display(bytes) {
  const text = textOrNull(bytes);
  // Control characters would vanish or break the table's layout.
  if (text !== null && !/[\u0000-\u001f\u007f]/.test(text)) return { text, binary: false };
  return { text: '0x' + toHex(bytes).replace(/[\s]/g, ''), binary: true };
}
