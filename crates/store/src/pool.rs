//! Idle database connections kept for reuse, shared by every store.
//!
//! An operation takes an idle connection (or opens one) and puts it back
//! when done. Opening costs far more than a query (SQLite parses the schema
//! and runs the connection's pragmas; PostgreSQL authenticates), so a pool
//! that keeps fewer idle connections than there are concurrent operations
//! churns. Connections are opened on demand, never waited for, so a read
//! nested in another cannot deadlock on the pool.

use std::sync::Mutex;

/// Idle SQLite connections kept per pool: above what a server on a small
/// machine runs at once (a connection is a file handle and a page cache).
pub(crate) const SQLITE_IDLE: usize = 32;

/// Idle PostgreSQL connections kept per pool: each is a server process,
/// and a vault process has three pools (records, identity, audit) that
/// must stay well under PostgreSQL's default limit of 100 connections with
/// a server and a few CLI commands running (busier sites put a connection
/// pooler such as PgBouncer in front).
pub(crate) const PG_IDLE: usize = 10;

/// A stack of idle connections.
pub(crate) struct Pool<C> {
    idle: Mutex<Vec<C>>,
    max_idle: usize,
}

impl<C> Pool<C> {
    /// A pool keeping at most `max_idle` idle connections.
    pub(crate) const fn new(max_idle: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// The most recently used idle connection, if any.
    pub(crate) fn take(&self) -> Option<C> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Keeps `conn` for reuse (closes it if `max_idle` are idle already).
    pub(crate) fn put(&self, conn: C) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}
