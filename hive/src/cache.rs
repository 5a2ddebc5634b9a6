//! The cache handle every store works through: the local store in standalone
//! mode, the cluster (which routes each key to its primary) in cluster mode.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hive_cluster::ClusterHandle;
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
    backend: Backend,
    /// Set once the node starts stopping (or is dropped). A plain atomic: it is
    /// read on every operation, from every thread.
    stopping: AtomicBool,
}

/// Where operations run.
enum Backend {
    Local(Arc<Store>),
    Cluster(ClusterHandle),
}

impl Cache {
    pub(crate) fn local(store: Arc<Store>) -> Self {
        Self::with(Backend::Local(store))
    }

    pub(crate) fn cluster(handle: ClusterHandle) -> Self {
        Self::with(Backend::Cluster(handle))
    }

    fn with(backend: Backend) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// Makes every later operation fail with [`Error::ShuttingDown`].
    pub(crate) fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
    }

    /// Returns true once the node started stopping.
    pub(crate) fn is_stopped(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Runs one byte-level operation on `key` exactly as given (no namespace),
    /// wherever the key's primary is. For protocol servers; typed code uses the
    /// stores.
    pub async fn execute_raw(&self, key: &[u8], op: Op) -> Result<Reply> {
        self.execute(key, op).await
    }

    /// Runs one operation on an internal (already namespaced) key.
    pub(crate) async fn execute(&self, key: &[u8], op: Op) -> Result<Reply> {
        if self.inner.stopping.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        match &self.inner.backend {
            Backend::Local(store) => Ok(store.execute(key, op)?),
            Backend::Cluster(cluster) => Ok(cluster.execute(key, op).await?),
        }
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.inner.backend {
            Backend::Local(_) => "standalone",
            Backend::Cluster(_) => "cluster",
        };
        f.debug_struct("Cache")
            .field("mode", &mode)
            .field("stopping", &self.inner.stopping.load(Ordering::Relaxed))
            .finish()
    }
}
