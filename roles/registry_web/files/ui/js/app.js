// SPDX-License-Identifier: GPL-3.0-or-later
// Registry browser: a single-page UI for a CNCF distribution registry, served by the same
// nginx that proxies /v2/ to the registry (same origin: no CORS). ES modules, no build.
// The registry's own users are the only login; credentials live in sessionStorage. With a
// token registry the UI asks the registry's token service for a token per repository, and
// shows only what that grants. This module is the views and the routing; api.js talks to
// the registry; format.js, names.js and pool.js are pure (tests/ui).
import { credentials, describe, listAll, listTags, request, tokens } from './api.js';
import { formatBytes, formatDate, naturalOrder, platformName, shortDigest } from './format.js';
import { apiPath, isDigest, parseLocation, pullReference, visible } from './names.js';
import { LoginNeeded, makePool, Stale } from './pool.js';
import { config, tokenMode } from './settings.js';

const ROWS_PER_PAGE = 50;
const DETAIL_REQUESTS = 6; // parallel manifest/config requests while a page of tags fills in
const COUNT_REQUESTS = 4; // parallel tag-count requests on the repository list

const app = document.getElementById('app');
let viewToken = 0; // bumped on every navigation: late answers of an old view are dropped

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// ---------------------------------------------------------------- page frame
function setHeader() {
  document.title = config.title;
  document.getElementById('title').textContent = config.title;
  document.getElementById('registry-name').textContent = config.registryName;
  document.getElementById('read-only-badge').hidden = !config.readOnly;
  const signedIn = config.authEnabled && Boolean(credentials.header());
  document.getElementById('user-name').textContent = signedIn ? credentials.user() : '';
  document.getElementById('logout').hidden = !signedIn;
}

function show(...children) {
  app.replaceChildren(...children);
}

function flash() {
  const message = sessionStorage.getItem('registry-web-flash');
  if (!message) return null;
  sessionStorage.removeItem('registry-web-flash');
  return h('p', { class: 'notice', id: 'notice', role: 'status' }, message);
}

// Where a view that could not be shown ends up: the login when the registry wants one
// (the view comes back after signing in), a page of its own for anything else.
function failure(error) {
  if (error instanceof Stale) return;
  if (error instanceof LoginNeeded && config.authEnabled) {
    renderLogin('Please sign in again.');
  } else if (error instanceof LoginNeeded) {
    renderError('The registry asks for a login, but this front has registry_web_auth_enabled: false.');
  } else {
    renderError('The registry answered: ' + error.message);
  }
}

function renderError(message) {
  viewToken += 1;
  show(h('section', { id: 'error-page' },
    h('h1', {}, 'Nothing to show here'),
    h('p', { class: 'error', id: 'error' }, message),
    h('p', {}, h('a', { href: '#/' }, 'Back to the repositories'))));
}

function pager(pages, page, onChange) {
  if (pages === 1) return h('span');
  return h('nav', { class: 'pager', 'aria-label': 'pages' },
    h('button', { type: 'button', id: 'page-prev', disabled: page <= 1, onclick: () => onChange(page - 1) }, '‹ Previous'),
    h('span', { id: 'page-info' }, 'Page ' + page + ' of ' + pages),
    h('button', { type: 'button', id: 'page-next', disabled: page >= pages, onclick: () => onChange(page + 1) }, 'Next ›'));
}

function pullCommand(repo, ref) {
  const command = 'docker pull ' + pullReference(config.registryName, repo, ref);
  const copy = h('button', { type: 'button', class: 'copy', title: 'Copy' }, 'Copy');
  copy.addEventListener('click', () => {
    if (navigator.clipboard) navigator.clipboard.writeText(command).then(() => { copy.textContent = 'Copied'; });
  });
  return h('span', { class: 'pull' }, h('code', { class: 'pull-command' }, command), copy);
}

// "12 of 201 tags"; data-total is set once the last page of the list has arrived.
function showTotal(summary, view, total, [one, many], complete) {
  summary.textContent = (view.filtered ? view.shown.length + ' of ' : '') + total + ' '
    + (total === 1 ? one : many) + (complete ? '' : ' so far…');
  summary.dataset.total = complete ? String(total) : '';
}

// Query parameters of a view (filter, page) live in the hash, so Back returns to them.
function setQuery(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
  const suffix = params.toString() ? '?' + params.toString() : '';
  history.replaceState(null, '', '#' + path + suffix);
}

// A list of names (repositories, tags) with a filter box and a page of rows on screen,
// shared by both list views. `row` makes a table row for a name; `empty(total, filter)`
// the row that says why none shows. update() takes the sorted names as they arrive.
function pagedList({ token, path, query, search, summary, nouns, body, pagerSlot, row, empty, beforeDraw }) {
  const list = { names: [], complete: false };
  let filter = query.get('q') || '';
  let page = Number(query.get('page')) || 1;

  function draw() {
    if (token !== viewToken) return;
    const view = visible(list.names, filter, page, ROWS_PER_PAGE);
    page = view.page;
    showTotal(summary, view, list.names.length, nouns, list.complete);
    if (beforeDraw) beforeDraw();
    const rows = view.rows.map(row);
    if (list.complete && view.shown.length === 0) rows.push(empty(list.names.length, filter));
    body.replaceChildren(...rows);
    pagerSlot.replaceChildren(pager(view.pages, page, (p) => {
      page = p;
      setQuery(path, { q: filter, page });
      draw();
    }));
  }

  search.value = filter;
  search.addEventListener('input', () => {
    filter = search.value;
    page = 1;
    setQuery(path, { q: filter });
    draw();
  });
  list.update = (names, complete) => {
    list.names = names.slice().sort(naturalOrder);
    list.complete = complete;
    draw();
  };
  return list;
}

// ---------------------------------------------------------------- login
function renderLogin(message) {
  viewToken += 1;
  setHeader();
  const error = h('p', { class: 'error', id: 'login-error', hidden: !message }, message || '');
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { id: 'login-form', class: 'login' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Use your registry account (the one docker login takes).'),
    h('label', {}, 'User name', user),
    h('label', {}, 'Password', password),
    error,
    h('button', { type: 'submit', id: 'login-submit' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    credentials.save(user.value, password.value);
    tokens.clear();
    try {
      if (tokenMode) await tokens.get('');
      else await request('/v2/');
      route();
    } catch (err) {
      credentials.clear();
      error.hidden = false;
      error.textContent = err instanceof LoginNeeded ? 'Wrong user name or password.' : 'The registry answered: ' + err.message;
      password.value = '';
      password.focus();
    }
  });
  show(form);
  user.focus();
}

// ---------------------------------------------------------------- repository list
function renderCatalog(query) {
  const token = viewToken;
  const counts = new Map();
  const countPool = makePool(COUNT_REQUESTS, () => token === viewToken);

  const search = h('input', { type: 'search', id: 'repo-search', placeholder: 'Filter repositories', 'aria-label': 'Filter repositories' });
  const summary = h('p', { id: 'repo-total', class: 'muted' }, 'Loading repositories…');
  const body = h('tbody');
  const table = h('table', { id: 'repo-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Repository'), h('th', { class: 'num' }, 'Tags'))), body);
  const pagerSlot = h('div');
  show(flash() || '', h('h1', {}, 'Repositories'), h('div', { class: 'toolbar' }, search, summary), table, pagerSlot);

  function countCell(repo) {
    const cell = h('td', { class: 'num tag-count' }, '…');
    const known = counts.get(repo);
    const fill = (n) => { cell.textContent = String(n); cell.dataset.count = String(n); };
    if (known !== undefined) fill(known);
    else {
      // Only for rows still on screen when their turn comes (the filter or page may
      // have changed meanwhile); a row drawn again later asks again.
      const task = () => (cell.isConnected ? listTags(repo, () => token === viewToken) : Promise.reject(new Stale()));
      countPool(task).then((tags) => {
        counts.set(repo, tags.length);
        fill(tags.length);
      }).catch((error) => {
        if (error instanceof Stale) return;
        if (error instanceof LoginNeeded) return failure(error);
        cell.textContent = '?';
        cell.title = error.message;
      });
    }
    return cell;
  }

  const list = pagedList({
    token,
    path: '/',
    query,
    search,
    summary,
    nouns: ['repository', 'repositories'],
    body,
    pagerSlot,
    row: (repo) => h('tr', { dataset: { repo } },
      h('td', {}, h('a', { href: '#/repo/' + encodeURIComponent(repo) }, repo)),
      countCell(repo)),
    empty: (total, filter) => h('tr', {}, h('td', { colspan: 2, class: 'muted' }, total
      ? 'No repository matches "' + filter + '".'
      : 'No repositories yet. Push one: docker push ' + config.registryName + '/hello:1')),
  });

  // Rows appear as each page of the catalog arrives, sorted together with the earlier ones.
  // A token registry's catalog is all or nothing; its token service lists what the user may pull.
  const catalogPath = tokenMode ? '/token/catalog' : '/v2/_catalog?n=' + config.pageSize;
  listAll(catalogPath, 'repositories', () => token === viewToken, (items, more) => list.update(items, !more))
    .catch(failure);
}

// ---------------------------------------------------------------- tags of a repository
function renderRepository(repo, query) {
  const token = viewToken;
  const detailPool = makePool(DETAIL_REQUESTS, () => token === viewToken);
  const details = new Map();
  const started = performance.now();
  const path = '/repo/' + encodeURIComponent(repo);

  const search = h('input', { type: 'search', id: 'tag-search', placeholder: 'Filter tags', 'aria-label': 'Filter tags' });
  const summary = h('p', { id: 'tag-total', class: 'muted' }, 'Loading tags…');
  const body = h('tbody');
  const table = h('table', { id: 'tag-table' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Tag'), h('th', {}, 'Digest'), h('th', { class: 'num' }, 'Size'),
      h('th', {}, 'Created'), h('th', {}, 'Platforms'), h('th', {}, 'Pull'))),
    body);
  const pagerSlot = h('div');
  show(
    flash() || '',
    h('nav', { class: 'crumbs' }, h('a', { href: '#/' }, 'Repositories'), ' / ', h('span', {}, repo)),
    h('h1', { id: 'repo-name' }, repo),
    h('div', { class: 'toolbar' }, search, summary),
    table,
    pagerSlot,
  );

  function fillRow(row, info) {
    const cells = row.children;
    cells[1].replaceChildren(h('code', { title: info.manifest.digest }, shortDigest(info.manifest.digest)));
    cells[1].dataset.digest = info.manifest.digest;
    if (info.index) {
      cells[2].textContent = info.platforms.length + ' images';
    } else {
      cells[2].textContent = formatBytes(info.size);
      cells[2].title = info.size + ' bytes';
      cells[2].dataset.bytes = String(info.size);
    }
    cells[3].textContent = formatDate(info.created);
    if (info.created) cells[3].dataset.created = info.created;
    cells[4].replaceChildren(...info.platforms.map((p) => h('span', { class: 'platform' }, p)));
    cells[4].dataset.platforms = info.platforms.join(',');
    if (info.index) row.classList.add('index');
    row.dataset.state = 'loaded';
  }

  function tagRow(tag) {
    const row = h('tr', { dataset: { tag, state: 'loading' } },
      h('td', {}, h('a', { href: '#' + path + '/tag/' + encodeURIComponent(tag) }, tag)),
      h('td', { class: 'digest' }, '…'),
      h('td', { class: 'num size' }),
      h('td', { class: 'created' }),
      h('td', { class: 'platforms' }),
      h('td', {}, pullCommand(repo, tag)));
    if (!details.has(tag)) {
      const pending = detailPool(() => (row.isConnected ? describe(repo, tag) : Promise.reject(new Stale())));
      details.set(tag, pending);
      pending.catch(() => details.delete(tag)); // skipped or failed: asked again when drawn again
    }
    details.get(tag).then((info) => {
      if (token === viewToken) fillRow(row, info);
      if (token === viewToken && body.querySelector('tr[data-state="loading"]') === null && list.complete) {
        table.dataset.renderedMs = String(Math.round(performance.now() - started));
      }
    }).catch((error) => {
      if (error instanceof Stale) return;
      if (error instanceof LoginNeeded) return failure(error);
      row.dataset.state = 'error';
      row.children[1].textContent = error.message;
    });
    return row;
  }

  const list = pagedList({
    token,
    path,
    query,
    search,
    summary,
    nouns: ['tag', 'tags'],
    body,
    pagerSlot,
    row: tagRow,
    empty: (total, filter) => h('tr', {}, h('td', { colspan: 6, class: 'muted' }, total
      ? 'No tag matches "' + filter + '".'
      : 'This repository has no tags.')),
    beforeDraw: () => { delete table.dataset.renderedMs; },
  });

  // Tags are sorted, so rows wait for the last page; the count shows progress meanwhile.
  // Details then fill in behind the rows, a page of rows at a time.
  listTags(repo, () => token === viewToken, (items, more) => {
    if (more) summary.textContent = items.length + ' tags so far…';
  }).then((items) => list.update(items, true)).catch(failure);
}

// ---------------------------------------------------------------- one tag (or digest)
function keyValue(rows) {
  const filled = rows.filter(([, value]) => value !== '' && value !== null && value !== undefined);
  return h('table', { class: 'kv' }, h('tbody', {}, filled.map(([key, value, id]) =>
    h('tr', {}, h('th', {}, key), h('td', id ? { id } : {}, value)))));
}

// The delete control: deleting a tag deletes its manifest (the registry's only delete).
function deleteControl(repo, ref, digest, repoPath) {
  const status = h('p', { class: 'error', id: 'delete-error', hidden: true });
  const button = h('button', { type: 'button', class: 'danger', id: 'delete-tag' }, 'Delete ' + ref);
  button.addEventListener('click', async () => {
    const question = 'Delete ' + repo + ':' + ref + '?\n\nThe registry deletes manifest ' + digest
      + ', so every tag that points to it goes too. Blobs are freed by the next garbage collection.';
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      await request(apiPath(repo, 'manifests', digest), { method: 'DELETE' });
      sessionStorage.setItem('registry-web-flash', 'Deleted ' + repo + ':' + ref + ' (' + shortDigest(digest) + ').');
      location.hash = repoPath;
    } catch (error) {
      if (error instanceof LoginNeeded) return failure(error);
      button.disabled = false;
      status.hidden = false;
      status.textContent = 'The registry refused the delete: ' + error.message;
    }
  });
  return h('div', { class: 'actions' }, button, status);
}

// The images of a multi-platform index, each row filled in as its manifest arrives.
function platformTable(repo, index, repoPath, token) {
  const body = h('tbody');
  const pool = makePool(DETAIL_REQUESTS, () => token === viewToken);
  for (const child of index.body.manifests) {
    const row = h('tr', { dataset: { platform: platformName(child.platform), digest: child.digest, state: 'loading' } },
      h('td', {}, platformName(child.platform)),
      h('td', {}, h('a', { href: repoPath + '/digest/' + child.digest }, h('code', { title: child.digest }, shortDigest(child.digest)))),
      h('td', { class: 'num size' }, '…'),
      h('td', { class: 'created' }));
    body.append(row);
    pool(() => describe(repo, child.digest)).then((childInfo) => {
      if (token !== viewToken) return;
      row.children[2].textContent = childInfo.size === null ? '' : formatBytes(childInfo.size);
      if (childInfo.size !== null) row.children[2].dataset.bytes = String(childInfo.size);
      row.children[3].textContent = formatDate(childInfo.created);
      row.dataset.state = 'loaded';
    }).catch((error) => {
      if (error instanceof Stale) return;
      row.dataset.state = 'error';
      row.children[2].textContent = error.message;
    });
  }
  return [
    h('h2', {}, 'Platforms'),
    h('table', { id: 'platform-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Platform'), h('th', {}, 'Digest'), h('th', { class: 'num' }, 'Size'), h('th', {}, 'Created'))),
      body),
  ];
}

// What one image is: platform, sizes, labels, layers and the history of its build.
function imageDetails(info) {
  const cfg = info.config || {};
  const inner = cfg.config || {};
  const labels = Object.entries(inner.Labels || {}).sort(([a], [b]) => naturalOrder(a, b));
  const layers = info.manifest.body.layers || [];
  const history = cfg.history || [];
  return [
    keyValue([
      ['Platform', info.platforms[0], 'detail-platform'],
      ['Created', formatDate(info.created), 'detail-created'],
      ['Size', formatBytes(info.size) + ' (' + info.size + ' bytes, compressed)', 'detail-size'],
      ['Entrypoint', (inner.Entrypoint || []).join(' ')],
      ['Command', (inner.Cmd || []).join(' ')],
    ]),
    h('h2', {}, 'Labels'),
    labels.length
      ? h('table', { id: 'label-table' }, h('tbody', {}, labels.map(([k, v]) => h('tr', { dataset: { label: k } }, h('th', {}, k), h('td', {}, v)))))
      : h('p', { class: 'muted', id: 'label-table' }, 'No labels.'),
    h('h2', {}, 'Layers (' + layers.length + ')'),
    h('table', { id: 'layer-table' },
      h('thead', {}, h('tr', {}, h('th', { class: 'num' }, '#'), h('th', {}, 'Digest'), h('th', { class: 'num' }, 'Size'), h('th', {}, 'Media type'))),
      h('tbody', {}, layers.map((layer, i) => h('tr', { dataset: { digest: layer.digest, bytes: String(layer.size) } },
        h('td', { class: 'num' }, String(i + 1)),
        h('td', {}, h('code', { title: layer.digest }, shortDigest(layer.digest))),
        h('td', { class: 'num', title: layer.size + ' bytes' }, formatBytes(layer.size)),
        h('td', { class: 'muted' }, layer.mediaType))))),
    h('h2', {}, 'History'),
    history.length
      ? h('ol', { id: 'history', class: 'history' }, history.map((step) =>
        h('li', { class: step.empty_layer ? 'empty' : '' },
          h('span', { class: 'muted' }, formatDate(step.created)), ' ',
          h('code', {}, step.created_by || step.comment || '(no command recorded)'))))
      : h('p', { class: 'muted', id: 'history' }, 'No history recorded.'),
  ];
}

async function renderTag(repo, ref) {
  const token = viewToken;
  const repoPath = '#/repo/' + encodeURIComponent(repo);
  const byDigest = isDigest(ref);
  // Shown while the manifest loads, and moved into the finished page.
  const crumbs = h('nav', { class: 'crumbs' }, h('a', { href: '#/' }, 'Repositories'), ' / ', h('a', { href: repoPath }, repo), ' / ', h('span', {}, byDigest ? shortDigest(ref) : ref));
  const heading = h('h1', { id: 'tag-name' }, repo + (byDigest ? '@' + shortDigest(ref) : ':' + ref));
  show(crumbs, heading, h('p', { class: 'muted' }, 'Loading…'));
  const info = await describe(repo, ref);
  // With tokens, the delete control only where the rules grant delete.
  const mayDelete = !config.readOnly && !byDigest
    && (!tokenMode || (await tokens.get('repository:' + repo + ':delete')).granted.includes('delete'));
  if (token !== viewToken) return;
  const digest = info.manifest.digest;
  show(
    crumbs,
    heading,
    keyValue([
      ['Digest', h('code', {}, digest), 'detail-digest'],
      ['Media type', info.manifest.mediaType, 'detail-media-type'],
      ['Pull', pullCommand(repo, byDigest ? digest : ref)],
    ]),
    mayDelete ? deleteControl(repo, ref, digest, repoPath) : '',
    ...(info.index ? platformTable(repo, info.manifest, repoPath, token) : imageDetails(info)),
  );
}

// ---------------------------------------------------------------- routing
function route() {
  viewToken += 1;
  setHeader();
  const where = parseLocation(location.hash);
  if (where.view === 'invalid') {
    renderError(where.reason);
    return;
  }
  if (config.authEnabled && !credentials.header()) {
    renderLogin();
    return;
  }
  try {
    if (where.view === 'repo') renderRepository(where.repo, where.query);
    else if (where.view === 'tag') renderTag(where.repo, where.ref).catch(failure);
    else renderCatalog(where.query);
  } catch (error) {
    failure(error);
  }
}

document.getElementById('logout').addEventListener('click', () => {
  credentials.clear();
  tokens.clear();
  location.hash = '#/';
  route();
});
window.addEventListener('hashchange', route);
route();
