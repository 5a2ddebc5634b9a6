//! The cache handle every store works through.

use std::fmt;
use std::sync::Arc;

use hive_store::{Op, Reply, Store};
use tokio_util::sync::CancellationToken;

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
    /// Cancelled when the node starts shutting down (or is dropped).
    stopping: CancellationToken,
}

impl Cache {
    pub(crate) fn new(store: Arc<Store>, stopping: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner { store, stopping }),
        }
    }

    /// Runs one operation on an internal (already namespaced) key.
    pub(crate) async fn execute(&self, key: &[u8], op: Op) -> Result<Reply> {
        if self.inner.stopping.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        Ok(self.inner.store.execute(key, op)?)
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("keys", &self.inner.store.len())
            .field("stopping", &self.inner.stopping.is_cancelled())
            .finish()
    }
}
