// The UI's formatting (roles/registry_web/files/ui/js/format.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, formatDate, naturalOrder, platformName, shortDigest } from '../../roles/registry_web/files/ui/js/format.js';

test('sizes: bytes as they are, then binary units with 2 or 1 decimals', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1024), '1.00 KiB');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(10 * 1024), '10.0 KiB');
  assert.equal(formatBytes(256 * 1024 * 1024), '256.0 MiB');
  assert.equal(formatBytes(3 * 1024 ** 4), '3.00 TiB');
  assert.equal(formatBytes(2048 * 1024 ** 4), '2048.0 TiB'); // no unit past TiB
});

test('sizes: unknown stays blank', () => {
  assert.equal(formatBytes(null), '');
  assert.equal(formatBytes(undefined), '');
});

test('dates: to the minute in UTC, or as given when unreadable', () => {
  assert.equal(formatDate('2026-12-06T21:41:12.123456789Z'), '2026-12-06 21:41 UTC');
  assert.equal(formatDate('2026-12-06T23:41:12+02:00'), '2026-12-06 21:41 UTC');
  // Reproducible builds date their images 1970: shown as it is, never hidden.
  assert.equal(formatDate('1970-01-01T00:00:00Z'), '1970-01-01 00:00 UTC');
  assert.equal(formatDate('yesterday'), 'yesterday');
  assert.equal(formatDate(''), '');
  assert.equal(formatDate(null), '');
});

test('digests: the first 12 hex digits of a sha256, other text unchanged', () => {
  const hex = 'ab'.repeat(32);
  assert.equal(shortDigest('sha256:' + hex), 'sha256:abababababab…');
  assert.equal(shortDigest(hex), 'abababababab…');
  assert.equal(shortDigest('sha512:xyz'), 'sha512:xyz');
  assert.equal(shortDigest(''), '');
});

test('platforms: os/architecture/variant, without the parts that are missing', () => {
  assert.equal(platformName({ os: 'linux', architecture: 'arm', variant: 'v7' }), 'linux/arm/v7');
  assert.equal(platformName({ os: 'linux', architecture: 'amd64' }), 'linux/amd64');
  assert.equal(platformName(undefined), 'unknown');
});

test('names sort as people read numbers', () => {
  assert.deepEqual(['v10', 'v9', 'V2', 'v1.10', 'v1.9'].sort(naturalOrder), ['v1.9', 'v1.10', 'V2', 'v9', 'v10']);
});
