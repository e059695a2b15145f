// worker.js: a leader-only worker on ONE pg.Client, with a session-bound leadership.
//
// The client LISTENs on leader_changed, holds the leadership (it ends the instant this
// session ends, so a crashed worker is replaced in milliseconds), renews it every ttl/3,
// and does the leader-only work: every WORK_INTERVAL, a transaction fenced by its term.
// Its holder shows as "WORKER_NAME (pid N)" (application_name and backend pid).
//
//   PGHOST=... PGDATABASE=... LEADER_GROUP=example-worker LEADER_TTL=10 node worker.js
//
// Stdout: "elected term=T", "revoked term=T", "new-leader term=T holder=H", "work term=T".
'use strict';

const { settings, Listener, Elector, runPrinting } = require('./elector');

const { group, ttl, name, workInterval } = settings();

// The one session: listener, leader and worker. PG* environment variables do the rest.
const session = new Listener({ application_name: name });

const elector = new Elector({
  group,
  ttl,
  workInterval,
  holder: null, // session-bound: the leader is this session
  listener: session,
  query: (text, values) => session.query(text, values),
  transaction: (fn) => fn(session), // the same session (the elector runs one thing at a time)
  // The leader-only work; the elector runs it in a transaction fenced by `term`.
  work: (client, term) => client.query(
    'INSERT INTO example_work (group_name, term, worker) VALUES ($1, $2, $3)',
    [group, term, name],
  ),
});

runPrinting(elector, () => session.close());
