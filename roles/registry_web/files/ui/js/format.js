// SPDX-License-Identifier: GPL-3.0-or-later
// How the UI writes sizes, dates, digests and platforms. Pure functions (tests/ui).

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit === 0 ? String(value) : value.toFixed(value < 10 ? 2 : 1)) + ' ' + units[unit];
}

export function formatDate(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
}

export function shortDigest(digest) {
  return digest ? digest.replace(/^(sha256:)?([0-9a-f]{12})[0-9a-f]*$/, '$1$2…') : '';
}

export function platformName(platform) {
  if (!platform) return 'unknown';
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

// Names as people sort them: tag 10 after tag 9.
export const naturalOrder = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' }).compare;
