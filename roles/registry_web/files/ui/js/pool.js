// SPDX-License-Identifier: GPL-3.0-or-later
// Errors the views tell apart, and a queue that bounds the requests in flight.

// A view was left: its late answers are dropped.
export class Stale extends Error {}
// The registry (or the token service) wants the user to sign in (again).
export class LoginNeeded extends Error {}
export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// A queue that runs at most `limit` tasks at once; once `isCurrent()` says its view was
// left, waiting tasks are dropped (rejected with Stale). Tasks start after the caller's
// synchronous work: rows are on the page by then.
export function makePool(limit, isCurrent) {
  let active = 0;
  const waiting = [];
  const next = () => {
    while (active < limit && waiting.length) {
      const job = waiting.shift();
      if (!isCurrent()) {
        job.reject(new Stale());
        continue;
      }
      active += 1;
      job.task().then(job.resolve, job.reject).finally(() => {
        active -= 1;
        next();
      });
    }
  };
  return (task) => new Promise((resolve, reject) => {
    waiting.push({ task, resolve, reject });
    queueMicrotask(next);
  });
}
