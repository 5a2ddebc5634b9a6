//! The cache handle every store works through.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hive_store::{Op, Reply, Store};

use crate::error::{Error, Result};

/// A cheap, cloneable handle to a node's data, used by every typed store.
/// `Clone + Send + Sync + 'static`; it stays valid after the node stops, but
/// then every operation fails with [`Error::ShuttingDown`].
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    /// Set once the node starts stopping (or is dropped). A plain atomic: it is
    /// read on every operation, from every thread.
    stopping: AtomicBool,
}

impl Cache {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// Makes every later operation fail with [`Error::ShuttingDown`].
    pub(crate) fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
    }

    /// Runs one operation on an internal (already namespaced) key.
    pub(crate) async fn execute(&self, key: &[u8], op: Op) -> Result<Reply> {
        if self.inner.stopping.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        Ok(self.inner.store.execute(key, op)?)
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("keys", &self.inner.store.len())
            .field("stopping", &self.inner.stopping.load(Ordering::Relaxed))
            .finish()
    }
}
