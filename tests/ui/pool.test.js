// The bounded request queue (roles/registry_web/files/ui/js/pool.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makePool, Stale } from '../../roles/registry_web/files/ui/js/pool.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

test('never more tasks at once than the limit, and every one runs', async () => {
  const pool = makePool(3, () => true);
  let running = 0;
  let most = 0;
  const task = async (i) => {
    running += 1;
    most = Math.max(most, running);
    await tick();
    running -= 1;
    return i;
  };
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => pool(() => task(i))));
  assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => i));
  assert.equal(most, 3);
});

test('tasks waiting when their view is left are dropped as Stale, never run', async () => {
  let current = true;
  const pool = makePool(1, () => current);
  const ran = [];
  const first = pool(async () => { ran.push(1); await tick(); return 1; });
  const second = pool(async () => { ran.push(2); return 2; });
  await tick(); // the first one runs; the second waits for its turn
  current = false;
  assert.equal(await first, 1);
  await assert.rejects(second, Stale);
  assert.deepEqual(ran, [1]);
});

test('a failing task fails only its own promise and frees its place', async () => {
  const pool = makePool(1, () => true);
  const failed = pool(() => Promise.reject(new Error('refused')));
  const next = pool(() => Promise.resolve('next'));
  await assert.rejects(failed, /refused/);
  assert.equal(await next, 'next');
});
