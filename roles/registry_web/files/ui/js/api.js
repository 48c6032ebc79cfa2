// SPDX-License-Identifier: GPL-3.0-or-later
// The registry's API as the UI uses it: credentials (the registry's own users, kept in
// sessionStorage), tokens (authMode token), requests, paginated lists, manifests.
import { platformName } from './format.js';
import { apiPath, grantedActions, nextPageOf, scopeOf } from './names.js';
import { HttpError, LoginNeeded, Stale } from './pool.js';
import { config, tokenMode } from './settings.js';

const MEDIA = {
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  docker: 'application/vnd.docker.distribution.manifest.v2+json',
  oci: 'application/vnd.oci.image.manifest.v1+json',
};
const ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.oci, MEDIA.docker].join(', ');

export const credentials = {
  header() {
    return sessionStorage.getItem('registry-web-auth') || '';
  },
  user() {
    return sessionStorage.getItem('registry-web-user') || '';
  },
  save(user, password) {
    const bytes = new TextEncoder().encode(user + ':' + password);
    let binary = '';
    bytes.forEach((b) => { binary += String.fromCharCode(b); });
    sessionStorage.setItem('registry-web-auth', 'Basic ' + btoa(binary));
    sessionStorage.setItem('registry-web-user', user);
  },
  clear() {
    sessionStorage.removeItem('registry-web-auth');
    sessionStorage.removeItem('registry-web-user');
  },
};

// Tokens by scope, each kept until shortly before it expires, with what it grants.
export const tokens = {
  cache: new Map(),
  async get(scope) {
    const known = this.cache.get(scope);
    if (known && known.until > Date.now()) return known;
    const query = scope ? '?scope=' + encodeURIComponent(scope) : '';
    const response = await fetch('/token' + query, {
      headers: { 'X-Registry-UI': '1', Authorization: credentials.header() },
      cache: 'no-store',
      credentials: 'omit',
    });
    if (response.status === 401) {
      credentials.clear();
      throw new LoginNeeded();
    }
    if (!response.ok) throw new HttpError(response.status, await errorText(response));
    const body = await response.json();
    const entry = {
      value: body.token,
      granted: grantedActions(body.token),
      until: Date.now() + Math.max(0, (body.expires_in || 60) - 15) * 1000,
    };
    this.cache.set(scope, entry);
    return entry;
  },
  clear() {
    this.cache.clear();
  },
};

export async function request(path, options = {}) {
  const method = options.method || 'GET';
  // The marker header makes the front drop the basic-auth challenge: no browser prompt.
  const headers = { 'X-Registry-UI': '1' };
  const scope = tokenMode ? scopeOf(path, method) : null;
  if (scope !== null) headers.Authorization = 'Bearer ' + (await tokens.get(scope)).value;
  else if (config.authEnabled && credentials.header()) headers.Authorization = credentials.header();
  if (options.accept) headers.Accept = options.accept;
  const response = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit' });
  if (response.status === 401 && scope) {
    // The token service knew the user; the rules do not grant this (401 is the
    // registry's answer for a token without the right).
    throw new HttpError(403, 'your account may not ' + scope.split(':').pop() + ' ' + scope.split(':')[1]);
  }
  if (response.status === 401) {
    credentials.clear();
    tokens.clear();
    throw new LoginNeeded();
  }
  if (!response.ok) throw new HttpError(response.status, await errorText(response));
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return (body.errors || []).map((e) => e.message || e.code).join('; ') || response.statusText;
  } catch (_) {
    return response.status + ' ' + response.statusText;
  }
}

// Every page of a paginated list (_catalog, tags/list), following the Link header; a
// view that was left meanwhile (isCurrent) stops it.
export async function listAll(firstPath, key, isCurrent, onPage) {
  const items = [];
  let path = firstPath;
  while (path) {
    const response = await request(path);
    const body = await response.json();
    if (!isCurrent()) throw new Stale();
    items.push(...(body[key] || []));
    const next = nextPageOf(response.headers.get('Link'));
    if (onPage) onPage(items, Boolean(next));
    path = next;
  }
  return items;
}

export async function listTags(repo, isCurrent, onPage) {
  try {
    return await listAll(apiPath(repo, 'tags', 'list') + '?n=' + config.pageSize, 'tags', isCurrent, onPage);
  } catch (error) {
    // A repository whose last tag was deleted answers NAME_UNKNOWN: it has no tags.
    if (error instanceof HttpError && error.status === 404) return [];
    throw error;
  }
}

async function fetchManifest(repo, ref) {
  const response = await request(apiPath(repo, 'manifests', ref), { accept: ACCEPT });
  const raw = await response.arrayBuffer();
  const body = JSON.parse(new TextDecoder().decode(raw));
  let digest = response.headers.get('Docker-Content-Digest');
  if (!digest) {
    const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', raw));
    digest = 'sha256:' + Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  const mediaType = body.mediaType || (response.headers.get('Content-Type') || '').split(';')[0];
  return { digest, mediaType, body };
}

function isIndex(manifest) {
  return manifest.mediaType === MEDIA.ociIndex || manifest.mediaType === MEDIA.dockerList
    || Array.isArray(manifest.body.manifests);
}

// Config blobs are addressed by their content, so one fetch per digest is enough for the
// whole session: tags that share an image (retags, rebuilt manifests) share the request.
const configCache = new Map();
function fetchConfig(repo, manifest) {
  const digest = manifest.body.config && manifest.body.config.digest;
  if (!digest) return Promise.resolve({});
  if (!configCache.has(digest)) {
    const pending = request(apiPath(repo, 'blobs', digest)).then((r) => r.json());
    configCache.set(digest, pending);
    pending.catch(() => configCache.delete(digest));
  }
  return configCache.get(digest);
}

function imageSize(manifest) {
  const parts = [manifest.body.config].concat(manifest.body.layers || []).filter(Boolean);
  return parts.reduce((sum, part) => sum + (part.size || 0), 0);
}

// What a row of the tag table shows: digest, size, created, platforms.
export async function describe(repo, ref) {
  const manifest = await fetchManifest(repo, ref);
  if (isIndex(manifest)) {
    const platforms = manifest.body.manifests.map((m) => platformName(m.platform));
    return { manifest, index: true, platforms, size: null, created: null };
  }
  const imageConfig = await fetchConfig(repo, manifest);
  return {
    manifest,
    index: false,
    platforms: [platformName(imageConfig)],
    size: imageSize(manifest),
    created: imageConfig.created || null,
    config: imageConfig,
  };
}
