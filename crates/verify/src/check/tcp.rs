//! TCP checks: the address accepts a connection.

use std::time::Instant;

use tokio::net::TcpStream;

use super::{Probed, human_elapsed};

/// Connect to `host:port`.
#[derive(Debug, Clone)]
pub struct TcpProbe {
    pub address: String,
}

impl TcpProbe {
    pub(crate) async fn attempt(&self) -> Probed {
        let t0 = Instant::now();
        match TcpStream::connect(self.address.as_str()).await {
            Ok(_) => {
                let latency = t0.elapsed();
                Probed {
                    summary: format!("connected in {}", human_elapsed(latency)),
                    latency: Some(latency),
                    ..Probed::default()
                }
            }
            Err(e) => Probed::unreachable(format!("cannot connect to {}: {e}", self.address)),
        }
    }
}
