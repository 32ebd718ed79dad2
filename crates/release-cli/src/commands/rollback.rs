//! `release rollback --env E [--to-version V]`: redeploy an earlier recorded release through
//! the same render, policy, apply and watch path as `release deploy`.

use crate::cli::{Global, RollbackArgs};
use crate::exit::{Code, Failure};

use super::deploy::{Options, Target, run_deploy};

pub async fn run(global: &Global, args: &RollbackArgs) -> Result<Code, Failure> {
    run_deploy(
        global,
        Target::Rollback(args.to_version.clone()),
        &Options {
            env: &args.env,
            timeout: args.timeout.as_deref(),
            lock_timeout: args.lock_timeout.as_deref(),
            junit: args.junit.as_deref(),
        },
    )
    .await
}
