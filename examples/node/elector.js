// elector.js: the election logic that worker.js and pool-worker.js share.
//
// - settings():  the examples' environment variables, with their defaults.
// - Listener:    one pg.Client that LISTENs on leader_changed and reconnects every second
//                after its connection is lost.
// - runPrinting: prints the events of an Elector and stops it on SIGTERM / SIGINT.
// - Elector:     an EventEmitter that campaigns for one group of the `leader` extension,
//                renews every ttl/3, runs fenced work while it leads, and emits
//                  'elected'   (term)          it became leader of `term`
//                  'revoked'   (term)          it stopped being leader of `term`, for any reason
//                  'newLeader' (term, holder)  a leadership of the group began (its own too)
//                  'work'      (term)          one unit of fenced work committed under `term`
//                Terms are BigInts (they are SQL bigints).
'use strict';

const { EventEmitter } = require('node:events');
const os = require('node:os');
const { performance } = require('node:perf_hooks');
const { setTimeout: sleep } = require('node:timers/promises');
const pg = require('pg');

function settings(env = process.env) {
  const s = {
    group: env.LEADER_GROUP || 'example-worker',
    ttl: Number(env.LEADER_TTL || 10), // seconds
    name: env.WORKER_NAME || `${os.hostname()}-${process.pid}`,
    workInterval: Number(env.WORK_INTERVAL || 1), // seconds
  };
  if (!(s.ttl > 0 && s.workInterval > 0)) {
    throw new Error('LEADER_TTL and WORK_INTERVAL must be positive numbers of seconds');
  }
  return s;
}

// One connection listening on leader_changed. Emits 'event' (the parsed JSON payload),
// 'connected' (client) after every (re)connection, and 'lost' when the connection ends.
// Connection settings not in `config` come from PGHOST, PGPORT, PGDATABASE, PGUSER, ...
class Listener extends EventEmitter {
  constructor(config) {
    super();
    this.config = config;
    this.client = null; // the connected client, or null
    this.closed = false;
  }

  async open() {
    while (!this.closed) {
      const client = new pg.Client(this.config);
      // Attached before connecting, so that no notification and no end is missed.
      client.on('notification', (msg) => this._notified(msg.payload));
      // An error on an idle connection (e.g. the server terminated it) means it is gone.
      client.on('error', (err) => {
        console.error(`connection error: ${err.message}`);
        if (this.client === client) this._lost(client);
      });
      client.once('end', () => this.client === client && this._lost(client));
      try {
        await client.connect();
        await client.query('LISTEN leader_changed');
      } catch (err) {
        console.error(`cannot connect (${err.message}); retrying in 1 s`);
        client.end().catch(() => {});
        await sleep(1000);
        continue;
      }
      this.client = client;
      this.emit('connected', client);
      return;
    }
  }

  _notified(payload) {
    let event;
    try {
      event = JSON.parse(payload);
    } catch {
      return console.error(`ignored a leader_changed payload that is not JSON: ${payload}`);
    }
    this.emit('event', event);
  }

  _lost(client) {
    this.client = null;
    client.end().catch(() => {});
    if (this.closed) return;
    console.error('connection lost; reconnecting in 1 s');
    this.emit('lost');
    setTimeout(() => this.open(), 1000);
  }

  query(text, values) {
    if (!this.client) return Promise.reject(new Error('not connected'));
    return this.client.query(text, values);
  }

  async close() {
    this.closed = true;
    const client = this.client;
    this.client = null;
    if (client) await client.end();
  }
}

class Elector extends EventEmitter {
  // group, ttl, workInterval: as settings() returns them.
  // holder:      null for a session-bound leadership (the session `query` runs on), or a name.
  // listener:    the Listener that brings the group's events.
  // query(text, values):  runs one statement.
  // transaction(fn):      calls fn(client) with a client for one transaction.
  // work(client, term):   the leader-only work, run inside a transaction fenced by `term`.
  constructor({ group, ttl, workInterval, holder, listener, query, transaction, work }) {
    super();
    Object.assign(this, { group, ttl, workInterval, holder, listener, query, transaction, work });
    this.term = null; // the term this process leads, or null
    this.lastTerm = 0n; // the highest term it was elected for; a revoked term is never resumed
    this.announced = 0n; // the highest term reported by 'newLeader'
    this.queue = Promise.resolve(); // its statements run one at a time, in order
    this.acquireQueued = false;
    this.workQueued = false;
    this.stopping = false;

    listener.on('event', (event) => this._onEvent(event));
    listener.on('connected', () => {
      this._catchUp();
      this.tryAcquire();
    });
    listener.on('lost', () => {
      // A session-bound leadership ends with its session.
      if (this.holder === null) this._revoke(this.term, 'connection lost');
    });
  }

  start() {
    this.renewTimer = setInterval(() => this.tryAcquire(), (this.ttl * 1000) / 3);
    this.workTimer = setInterval(() => this.doWork(), this.workInterval * 1000);
    this.listener.open();
  }

  // Stop campaigning; if leading, release the leadership (then 'revoked').
  async stop() {
    this.stopping = true;
    clearInterval(this.renewTimer);
    clearInterval(this.workTimer);
    await this._serial(async () => {
      const term = this.term;
      if (term === null) return;
      try {
        await this.query('SELECT leader_release($1, $2)', [this.group, this.holder]);
      } finally {
        this._revoke(term, 'released on shutdown');
      }
    });
  }

  // Become leader if the group is free, or renew (same term) if leading.
  tryAcquire() {
    if (this.acquireQueued || this.stopping) return;
    this.acquireQueued = true;
    this._serial(async () => {
      this.acquireQueued = false;
      if (this.stopping) return;
      const sentAt = performance.now();
      const { rows } = await this.query(
        'SELECT CASE WHEN leader_try_acquire($1, $2::interval, $3) THEN leader_term($1, $3) END AS term',
        [this.group, `${this.ttl} seconds`, this.holder],
      );
      const term = rows[0].term === null ? null : BigInt(rows[0].term);
      if (term !== null && term === this.term) return this._armDeadline(sentAt); // renewed
      this._revoke(this.term, term === null ? 'renewal answered false' : `now term ${term}`);
      if (term === null) return;
      if (term <= this.lastTerm) {
        // We already reported this term revoked (e.g. no renewal was confirmed in time,
        // yet the lease survived): give it back and run again for a new term.
        await this.query('SELECT leader_release($1, $2)', [this.group, this.holder]);
        return this.tryAcquire();
      }
      this.term = this.lastTerm = term;
      this._armDeadline(sentAt);
      this.emit('elected', term);
    });
  }

  // One unit of work in a transaction that leader_fence() holds to our term.
  doWork() {
    if (this.term === null || this.workQueued || this.stopping) return;
    this.workQueued = true;
    this._serial(async () => {
      this.workQueued = false;
      const term = this.term;
      if (term === null || this.stopping) return;
      try {
        await this.transaction(async (client) => {
          await client.query('BEGIN');
          try {
            await client.query('SELECT leader_fence($1, $2)', [this.group, term]);
            await this.work(client, term);
            await client.query('COMMIT');
          } catch (err) {
            await client.query('ROLLBACK').catch(() => {});
            throw err;
          }
        });
        this.emit('work', term);
      } catch (err) {
        if (err.code !== '55000') throw err;
        this._revoke(term, `leader_fence: ${err.message}`); // the term is over
      }
    });
  }

  // An event on leader_changed.
  _onEvent(event) {
    if (event.group !== this.group || !Number.isInteger(event.term) || this.stopping) return;
    const term = BigInt(event.term);
    if (event.event === 'acquired') {
      this._announce(term, event.holder);
    } else {
      // released, expired, vacated or forced: the end of `term`.
      this._revoke(term, `${event.event} event`);
      if (this.term === null) this.tryAcquire(); // the group is free: run for it now
    }
  }

  // After (re)connecting: report the current leader, whose 'acquired' may have been missed.
  _catchUp() {
    this._serial(async () => {
      if (this.stopping) return;
      const { rows } = await this.query(
        "SELECT term, holder FROM leader_status WHERE group_name = $1 AND state = 'held'",
        [this.group],
      );
      if (rows.length) this._announce(BigInt(rows[0].term), rows[0].holder);
    });
  }

  _announce(term, holder) {
    if (term <= this.announced) return; // once per term
    this.announced = term;
    this.emit('newLeader', term, holder);
  }

  _revoke(term, reason) {
    if (term === null || term !== this.term) return; // once per term
    this.term = null;
    clearTimeout(this.deadline);
    console.error(`term ${term} ended: ${reason}`);
    this.emit('revoked', term);
  }

  // The lease lasts at least ttl from when the last confirmed renewal was sent. If no
  // renewal is confirmed by then (a server that stopped answering), stop acting.
  _armDeadline(sentAt) {
    const term = this.term;
    clearTimeout(this.deadline);
    this.deadline = setTimeout(
      () => this._revoke(term, 'no renewal confirmed within the TTL'),
      sentAt + this.ttl * 1000 - performance.now(),
    );
  }

  // Run fn after everything queued before it; an error is reported and the queue goes on.
  _serial(fn) {
    this.queue = this.queue.then(fn).catch((err) => console.error(`${this.group}: ${err.message}`));
    return this.queue;
  }
}

// Runs an example program: prints one line per event of `elector` (the examples'
// output), starts it, and on SIGTERM or SIGINT stops it (releasing the leadership if it
// holds it), calls `close` to end the program's connections, and exits 0.
function runPrinting(elector, close) {
  elector.on('elected', (term) => console.log(`elected term=${term}`));
  elector.on('revoked', (term) => console.log(`revoked term=${term}`));
  elector.on('newLeader', (term, holder) => console.log(`new-leader term=${term} holder=${holder}`));
  elector.on('work', (term) => console.log(`work term=${term}`));

  async function shutdown(signal) {
    console.error(`${signal}: stepping down`);
    try {
      await elector.stop();
      await close();
    } catch (err) {
      console.error(err.message);
    }
    process.exit(0);
  }
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);

  elector.start();
}

module.exports = { settings, Listener, Elector, runPrinting };
