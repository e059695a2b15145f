// pool-worker.js: a leader-only worker on a pg.Pool, with a NAMED holder (WORKER_NAME).
//
// A named leadership belongs to the name, not to a connection: any pooled connection
// (or one behind PgBouncer in transaction mode) may renew or release it, and it ends only
// by release, leader_force_release or its TTL. So a crashed worker is replaced after
// about the TTL, not at once; use worker.js's session-bound holder where that matters.
// Renewals go through pool.query, fenced work through pool.connect(); the events come on
// one dedicated pg.Client, since LISTEN needs a session of its own. Behind PgBouncer in
// transaction pooling, LISTEN is lost: give that client a real session with
// LEADER_LISTEN_URL, a connection URI to the server itself or to a session-pooled
// database (default: the same PG* settings as the pool).
//
//   PGHOST=... PGDATABASE=... LEADER_GROUP=example-worker LEADER_TTL=10 node pool-worker.js
//   PGHOST=pgbouncer PGPORT=6432 LEADER_LISTEN_URL=postgresql://db.internal/app node pool-worker.js
//
// Stdout: "elected term=T", "revoked term=T", "new-leader term=T holder=H", "work term=T".
'use strict';

const pg = require('pg');
const { settings, Listener, Elector, runPrinting } = require('./elector');

const { group, ttl, name, workInterval } = settings();

// PG* environment variables give the connection settings.
const pool = new pg.Pool({ application_name: name });
pool.on('error', (err) => console.error(`idle pooled connection: ${err.message}`));
const listener = new Listener({
  application_name: name,
  connectionString: process.env.LEADER_LISTEN_URL, // when unset, the PG* settings
});

const elector = new Elector({
  group,
  ttl,
  workInterval,
  holder: name, // named: whichever pooled connection calls, the holder is this name
  listener,
  query: (text, values) => pool.query(text, values),
  transaction: async (fn) => {
    const client = await pool.connect(); // any pooled connection will do
    try {
      return await fn(client);
    } finally {
      client.release(); // the pool drops it if its connection broke
    }
  },
  // The leader-only work; the elector runs it in a transaction fenced by `term`.
  work: (client, term) => client.query(
    'INSERT INTO example_work (group_name, term, worker) VALUES ($1, $2, $3)',
    [group, term, name],
  ),
});

runPrinting(elector, async () => {
  await listener.close();
  await pool.end();
});
