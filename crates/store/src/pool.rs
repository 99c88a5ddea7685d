//! Idle database connections kept for reuse, shared by every store.
//!
//! An operation takes an idle connection (or opens one) and puts it back
//! when done. Opening costs far more than a query (SQLite parses the schema
//! and runs the connection's pragmas; PostgreSQL authenticates), so a pool
//! that keeps fewer idle connections than there are concurrent operations
//! churns: [`MAX_IDLE`] is above what a server on a small machine runs at
//! once. Connections are opened on demand, never waited for, so a read
//! nested in another cannot deadlock on the pool.

use std::sync::Mutex;

/// Idle connections kept per pool.
pub(crate) const MAX_IDLE: usize = 32;

/// A stack of idle connections.
pub(crate) struct Pool<C> {
    idle: Mutex<Vec<C>>,
}

impl<C> Pool<C> {
    pub(crate) const fn new() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The most recently used idle connection, if any.
    pub(crate) fn take(&self) -> Option<C> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Keeps `conn` for reuse (closes it if [`MAX_IDLE`] are idle already).
    pub(crate) fn put(&self, conn: C) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}
