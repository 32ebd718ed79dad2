//! One engine connection shared by every check of a run against the same engine, made by
//! the first check that needs it: a run whose checks never reach the engine never
//! connects, and a hundred checks connect once.

use engine::{Endpoint, Engine, EngineError};
use tokio::sync::OnceCell;

#[derive(Debug)]
pub(crate) struct LazyEngine {
    endpoint: Endpoint,
    engine: OnceCell<Engine>,
}

impl LazyEngine {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            engine: OnceCell::new(),
        }
    }

    /// The connection, made now if no check made it yet. A failed attempt is not kept:
    /// the next check tries again.
    pub(crate) async fn get(&self) -> Result<&Engine, EngineError> {
        self.engine
            .get_or_try_init(|| Engine::connect(&self.endpoint))
            .await
    }
}
