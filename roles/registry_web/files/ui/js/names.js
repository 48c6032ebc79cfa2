// SPDX-License-Identifier: GPL-3.0-or-later
// The registry's grammar and the UI's addresses. Names come from the address bar, so
// nothing reaches a /v2/ path before it passed these. Pure functions (tests/ui).

const NAME_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
export const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isRepository(name) {
  return name.length <= 255 && name.split('/').every((c) => NAME_COMPONENT.test(c));
}

export function isDigest(ref) {
  return DIGEST.test(ref);
}

// A /v2/ path with every segment encoded (':' of a digest stays as it is).
export function apiPath(repo, ...rest) {
  const encode = (segment) => encodeURIComponent(segment).replace(/%3A/gi, ':');
  return '/v2/' + repo.split('/').map(encode).concat(rest.map(encode)).join('/');
}

// What `docker pull` takes for a tag or a digest of a repository of this registry.
export function pullReference(registryName, repo, ref) {
  return registryName + '/' + repo + (isDigest(ref) ? '@' : ':') + ref;
}

// The scope a /v2/ request needs: pull for reads, delete for a delete; none ('') for /v2/
// itself; null for what is not the registry's API (the token service's own paths).
export function scopeOf(path, method) {
  const bare = path.split('?')[0];
  if (!bare.startsWith('/v2/')) return null;
  const match = bare.match(/^\/v2\/(.+)\/(?:tags\/list|manifests\/[^/]+|blobs\/[^/]+)$/);
  if (!match) return '';
  return 'repository:' + decodeURIComponent(match[1]) + ':' + (method === 'DELETE' ? 'delete' : 'pull');
}

// The next page of a paginated list, from its Link header (or null).
export function nextPageOf(link) {
  const match = (link || '').match(/<([^>]+)>\s*;\s*rel="?next"?/);
  return match ? match[1] : null;
}

// The actions a token grants: the access list in its (unencrypted, signed) payload.
export function grantedActions(token) {
  const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  const claims = JSON.parse(atob(payload + '='.repeat((4 - (payload.length % 4)) % 4)));
  return (claims.access || []).flatMap((entry) => entry.actions || []);
}

// The view an address (location.hash) asks for; `invalid` says why it cannot be shown (a
// name outside the registry's grammar, or a broken %-sequence).
export function parseLocation(hash) {
  const [path, search] = (hash.replace(/^#/, '') || '/').split('?');
  let parts;
  let query;
  try {
    query = new URLSearchParams(search || '');
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch (_) {
    return { view: 'invalid', reason: 'This address is not valid.' };
  }
  if (parts.length === 0) return { view: 'catalog', query };
  const tagView = parts.length === 4 && (parts[2] === 'tag' || parts[2] === 'digest');
  if (parts[0] !== 'repo' || !(parts.length === 2 || tagView)) {
    return { view: 'invalid', reason: 'There is no page at this address.' };
  }
  if (!isRepository(parts[1])) {
    return { view: 'invalid', reason: 'This is not a repository name the registry accepts.' };
  }
  if (!tagView) return { view: 'repo', repo: parts[1], query };
  if (parts[2] === 'tag' ? !TAG.test(parts[3]) : !isDigest(parts[3])) {
    return { view: 'invalid', reason: 'This is not a tag or digest the registry accepts.' };
  }
  return { view: 'tag', repo: parts[1], ref: parts[3], query };
}

// The items that match the filter, and the page of them on screen.
export function visible(items, filter, page, perPage) {
  const needle = filter.trim().toLowerCase();
  const shown = needle ? items.filter((item) => item.toLowerCase().includes(needle)) : items;
  const pages = Math.max(1, Math.ceil(shown.length / perPage));
  const current = Math.min(Math.max(1, page), pages);
  const rows = shown.slice((current - 1) * perPage, current * perPage);
  return { shown, rows, pages, page: current, filtered: Boolean(needle) };
}
