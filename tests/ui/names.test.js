// The registry's grammar and the UI's addresses (roles/registry_web/files/ui/js/names.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  apiPath, grantedActions, isDigest, isRepository, nextPageOf, parseLocation, pullReference, scopeOf, visible,
} from '../../roles/registry_web/files/ui/js/names.js';

const DIGEST = 'sha256:' + 'a1'.repeat(32);

test('repository names follow the distribution grammar', () => {
  for (const name of ['app', 'team/app', 'a/b/c-d_e.f', 'x__y', 'a--b']) assert.ok(isRepository(name), name);
  for (const name of ['App', 'team/', '/app', 'a..b', 'a_-b', '-a', 'a b', 'a/../b', 'a%2Fb']) {
    assert.ok(!isRepository(name), name);
  }
  assert.ok(isRepository('a'.repeat(255)));
  assert.ok(!isRepository('a'.repeat(256)));
});

test('digests are told from tags', () => {
  assert.ok(isDigest(DIGEST));
  assert.ok(!isDigest('latest'));
  assert.ok(!isDigest('v1.0'));
});

test('API paths encode every segment but keep the colon of a digest', () => {
  assert.equal(apiPath('team/app', 'tags', 'list'), '/v2/team/app/tags/list');
  assert.equal(apiPath('team/app', 'manifests', DIGEST), '/v2/team/app/manifests/' + DIGEST);
  assert.equal(apiPath('a', 'manifests', '../x?y'), '/v2/a/manifests/..%2Fx%3Fy');
});

test('pull references: a tag after a colon, a digest after an at sign', () => {
  assert.equal(pullReference('registry.example.com:5000', 'team/app', '1.0'), 'registry.example.com:5000/team/app:1.0');
  assert.equal(pullReference('web.example.com', 'team/app', DIGEST), 'web.example.com/team/app@' + DIGEST);
});

test('the token scope of a request: pull to read, delete to delete, none for /v2/', () => {
  assert.equal(scopeOf('/v2/team/app/tags/list?n=100', 'GET'), 'repository:team/app:pull');
  assert.equal(scopeOf('/v2/team/app/manifests/' + DIGEST, 'DELETE'), 'repository:team/app:delete');
  assert.equal(scopeOf('/v2/team/app/blobs/' + DIGEST, 'GET'), 'repository:team/app:pull');
  assert.equal(scopeOf('/v2/', 'GET'), '');
  assert.equal(scopeOf('/v2/_catalog?n=100', 'GET'), '');
  assert.equal(scopeOf('/token/catalog', 'GET'), null);
});

test('the next page comes from the Link header', () => {
  assert.equal(nextPageOf('</v2/_catalog?last=b&n=2>; rel="next"'), '/v2/_catalog?last=b&n=2');
  assert.equal(nextPageOf('</v2/x/tags/list?last=9&n=100>; rel=next'), '/v2/x/tags/list?last=9&n=100');
  assert.equal(nextPageOf(null), null);
  assert.equal(nextPageOf('</v2/_catalog>; rel="prev"'), null);
});

test('a token grants what its access list says', () => {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const token = (claims) => [encode({ alg: 'ES256' }), encode(claims), 'signature'].join('.');
  assert.deepEqual(grantedActions(token({ access: [{ type: 'repository', name: 'a', actions: ['pull', 'delete'] }] })), ['pull', 'delete']);
  assert.deepEqual(grantedActions(token({ access: [{ type: 'repository', name: 'a', actions: [] }] })), []);
  assert.deepEqual(grantedActions(token({ sub: 'anonymous' })), []);
  // Payloads whose base64url needs padding back, and uses - and _.
  const odd = { access: [{ actions: ['pull'] }], pad: '??>' };
  assert.deepEqual(grantedActions(token(odd)), ['pull']);
});

test('addresses: the views and what is refused', () => {
  assert.equal(parseLocation('').view, 'catalog');
  assert.equal(parseLocation('#/').view, 'catalog');
  const repo = parseLocation('#/repo/team%2Fapp?q=v1&page=2');
  assert.equal(repo.view, 'repo');
  assert.equal(repo.repo, 'team/app');
  assert.equal(repo.query.get('q'), 'v1');
  assert.equal(repo.query.get('page'), '2');
  assert.deepEqual(
    (({ view, repo: r, ref }) => ({ view, repo: r, ref }))(parseLocation('#/repo/app/tag/1.0')),
    { view: 'tag', repo: 'app', ref: '1.0' },
  );
  assert.equal(parseLocation('#/repo/app/digest/' + DIGEST).ref, DIGEST);
  assert.equal(parseLocation('#/repo/app/digest/latest').view, 'invalid');
  assert.equal(parseLocation('#/repo/App').view, 'invalid');
  assert.equal(parseLocation('#/repo/app/tag/-bad').view, 'invalid');
  assert.equal(parseLocation('#/elsewhere').view, 'invalid');
  assert.equal(parseLocation('#/repo/%E0%A4%A').reason, 'This address is not valid.');
});

test('a page of the names that match the filter', () => {
  const names = Array.from({ length: 120 }, (_, i) => 'tag-' + i);
  const first = visible(names, '', 1, 50);
  assert.deepEqual([first.pages, first.page, first.rows.length, first.filtered], [3, 1, 50, false]);
  assert.equal(visible(names, '', 9, 50).page, 3); // past the end: the last page
  assert.equal(visible(names, '', 0, 50).page, 1);
  assert.deepEqual(visible(names, '', 3, 50).rows, names.slice(100));
  const filtered = visible(names, ' TAG-11 ', 1, 50);
  assert.deepEqual(filtered.shown, ['tag-11', 'tag-110', 'tag-111', 'tag-112', 'tag-113', 'tag-114', 'tag-115', 'tag-116', 'tag-117', 'tag-118', 'tag-119']);
  assert.equal(filtered.filtered, true);
  assert.deepEqual(visible([], 'x', 1, 50), { shown: [], rows: [], pages: 1, page: 1, filtered: true });
});
